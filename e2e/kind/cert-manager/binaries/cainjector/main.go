// Command cainjector: the part of cert-manager's cainjector that make kind-e2e needs. A
// controller-runtime manager with the injectors of the published
// github.com/cert-manager/cert-manager module (pkg/controller/cainjector) for
// ValidatingWebhookConfigurations and MutatingWebhookConfigurations only: it fills their
// webhooks' caBundle from the Certificate named by cert-manager.io/inject-ca-from (or the
// Secret of cert-manager.io/inject-ca-from-secret). One replica, no leader election, no
// metrics or health endpoints, no APIService or CRD injection. In-cluster config unless
// --kubeconfig (controller-runtime's flag) names a file.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
)

func main() {
	klog.InitFlags(nil) // --v and klog's other flags
	flag.Parse()
	defer klog.Flush()
	ctrl.SetLogger(logf.Log)

	if err := run(ctrl.SetupSignalHandler()); err != nil {
		klog.ErrorS(err, "cainjector failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	ctx = logf.NewContext(ctx, logf.Log, "cainjector")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	cfg = util.RestConfigWithUserAgent(cfg, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// The injectors watch only the metadata of Secrets and read the one they need
		// from the API server: no cache of whole Secrets.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}

	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.MutatingWebhookConfigurationName:   true,
		},
	})
	if err != nil {
		return fmt.Errorf("injectors: %w", err)
	}
	return mgr.Start(ctx)
}
