//go:build tools

// Package tools pins, in this module's go.mod and go.sum, every Kubernetes
// command that e2e/ builds from source: kube-apiserver and kubectl for the
// local test API server (e2e/control-plane), and all seven for the kind node
// image (e2e/kind/node-image). One module, so that the packages they share are
// compiled once into Go's build cache. build.sh builds them with
//   go build k8s.io/kubernetes/cmd/<name>
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubeadm/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
