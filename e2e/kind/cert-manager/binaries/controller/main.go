// Command controller: the part of cert-manager's controller that make kind-e2e needs,
// built from the controllers that the published github.com/cert-manager/cert-manager
// module registers (pkg/controller.Known): self-signed and CA Issuers and ClusterIssuers,
// the approval of their CertificateRequests, and the Certificate controllers that turn a
// Certificate into a signed key pair in its Secret. One replica, no leader election, no
// metrics or health endpoints, no ACME, Vault or Venafi. In-cluster config unless
// --kubeconfig names a file.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each of these registers its controller (or, pkg/issuer/..., its Issuer kind) in its
	// init function; their names are the *ControllerName constants used below.
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// supported is every controller this command can run, in the order they are started.
var supported = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

func main() {
	klog.InitFlags(nil) // --v and klog's other flags
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: the in-cluster config)")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system",
		"namespace of the Secrets that ClusterIssuers refer to")
	enabled := flag.String("controllers", strings.Join(supported, ","),
		"comma-separated controllers to run, of: "+strings.Join(supported, ", "))
	workers := flag.Int("workers", 5, "workers per controller")
	flag.Parse()
	defer klog.Flush()

	names, err := selectControllers(*enabled)
	if err == nil {
		err = run(names, *kubeconfig, *clusterResourceNamespace, *workers)
	}
	if err != nil {
		klog.ErrorS(err, "controller failed")
		klog.Flush()
		os.Exit(1)
	}
}

// selectControllers checks the --controllers list against supported and the registry.
func selectControllers(list string) ([]string, error) {
	var names []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := controller.Known()[name]; !ok || !slices.Contains(supported, name) {
			return nil, fmt.Errorf("--controllers: %q is not one of %s", name, strings.Join(supported, ", "))
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--controllers: none given")
	}
	return names, nil
}

func run(names []string, kubeconfig, clusterResourceNamespace string, workers int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	// The values cert-manager's own command defaults to, where they matter here.
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
		},
	})
	if err != nil {
		return err
	}
	// Every Context of the factory shares its informer factories: constructing the
	// controllers registers their informers, which start after.
	shared, err := factory.Build()
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, name := range names {
		c, err := controller.Known()[name](factory)
		if err != nil {
			stop()
			_ = g.Wait()
			return fmt.Errorf("controller %s: %w", name, err)
		}
		log.Info("starting controller", "controller", name)
		g.Go(func() error { return c.Run(workers, gctx) })
	}
	shared.SharedInformerFactory.Start(gctx.Done())
	shared.KubeSharedInformerFactory.Start(gctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(gctx.Done())

	err = g.Wait()
	if ctx.Err() != nil { // a signal: a controller's error is then only its stopping
		log.Info("stopped")
		return nil
	}
	return err
}
