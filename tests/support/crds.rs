//! `ApiResource`s of the custom resources the project watches. Their
//! definitions for the local test cluster are in `e2e/crds/`.

use kube::api::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};

fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// `pipelineruns.tekton.dev/v1`, namespaced.
pub fn pipelinerun() -> ApiResource {
    ar("tekton.dev", "v1", "PipelineRun", "pipelineruns")
}

/// `components.appstudio.redhat.com/v1alpha1`, namespaced.
pub fn component() -> ApiResource {
    ar(
        "appstudio.redhat.com",
        "v1alpha1",
        "Component",
        "components",
    )
}

/// `konfluxes.konflux.konflux-ci.dev/v1alpha1`, cluster-scoped.
pub fn konflux() -> ApiResource {
    ar("konflux.konflux-ci.dev", "v1alpha1", "Konflux", "konfluxes")
}

/// `clusterversions.config.openshift.io/v1`, cluster-scoped.
pub fn cluster_version() -> ApiResource {
    ar(
        "config.openshift.io",
        "v1",
        "ClusterVersion",
        "clusterversions",
    )
}

/// `consoles.operator.openshift.io/v1`, cluster-scoped: OpenShift's console operator config.
pub fn console() -> ApiResource {
    ar("operator.openshift.io", "v1", "Console", "consoles")
}

/// All four, with their scope.
pub fn all() -> Vec<(ApiResource, Scope)> {
    vec![
        (pipelinerun(), Scope::Namespaced),
        (component(), Scope::Namespaced),
        (konflux(), Scope::Cluster),
        (cluster_version(), Scope::Cluster),
    ]
}

/// `applications.appstudio.redhat.com/v1alpha1`: only counted (Usage Summary).
pub fn application() -> ApiResource {
    ar(
        "appstudio.redhat.com",
        "v1alpha1",
        "Application",
        "applications",
    )
}

/// `integrationtestscenarios.appstudio.redhat.com/v1beta2`: only counted.
pub fn integration_test_scenario() -> ApiResource {
    ar(
        "appstudio.redhat.com",
        "v1beta2",
        "IntegrationTestScenario",
        "integrationtestscenarios",
    )
}

/// `releases.appstudio.redhat.com/v1alpha1`: only counted, by outcome.
pub fn release() -> ApiResource {
    ar("appstudio.redhat.com", "v1alpha1", "Release", "releases")
}
