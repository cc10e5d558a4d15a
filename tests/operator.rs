//! What the real Konflux operator wrote for telemetry (`shared/konflux-operator/objects/`,
//! captured from the operator run against the local API server) against what
//! `docs/operator.md` says of it and what `deploy/` does in its place: the operand's
//! labels and owner, `envFrom` with `optional: true`, its resources, its security context
//! (which the daemon's Deployment follows), and its ClusterRole rule by rule. A fact of the
//! operator that the page misstates fails here.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn shared() -> PathBuf {
    std::env::var_os("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Every YAML document of a file, as JSON values.
fn yaml_documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (set SHARED to the shared/ folder)", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn captured(name: &str) -> Value {
    let path = shared().join("konflux-operator/objects").join(name);
    yaml_documents(&path).remove(0)
}

fn operator_page() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/operator.md"))
        .expect("docs/operator.md")
}

/// The page as one line, runs of white space as one space: a phrase wrapped across lines
/// is still found.
fn operator_prose() -> String {
    operator_page()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_page_states_the_operands_labels_owner_envfrom_and_resources() {
    let page = operator_prose();
    let cronjob = captured("cronjob.yaml");
    let secret = captured("secret.yaml");
    for object in [&cronjob, &secret, &captured("clusterrole.yaml")] {
        let labels = object["metadata"]["labels"].as_object().expect("labels");
        for key in [
            "konflux.konflux-ci.dev/owner",
            "konflux.konflux-ci.dev/component",
        ] {
            let value = labels[key].as_str().expect("a label value");
            assert!(
                page.contains(&format!("`{key}={value}`")),
                "docs/operator.md does not state the label {key}={value}"
            );
        }
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["controller"], true);
        let (kind, name) = (
            owner["kind"].as_str().expect("kind"),
            owner["name"].as_str().expect("name"),
        );
        assert!(
            page.contains(&format!("`{kind}` `{name}` as controlling owner")),
            "docs/operator.md does not state the owner {kind} {name}"
        );
    }
    let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let secret_ref = &container["envFrom"][0]["secretRef"];
    assert_eq!(secret_ref["name"], secret["metadata"]["name"]);
    assert_eq!(secret_ref["optional"], true);
    assert!(
        page.contains("`envFrom` the Secret `segment-bridge-config` with `optional: true`"),
        "docs/operator.md does not state envFrom with optional: true"
    );
    let r = &container["resources"];
    let said = format!(
        "requests {}/{}, limits {}/{}",
        r["requests"]["cpu"].as_str().expect("cpu"),
        r["requests"]["memory"].as_str().expect("memory"),
        r["limits"]["cpu"].as_str().expect("cpu"),
        r["limits"]["memory"].as_str().expect("memory"),
    );
    assert!(page.contains(&said), "docs/operator.md does not say {said}");
    let keys: Vec<&String> = secret["data"].as_object().expect("data").keys().collect();
    for key in keys {
        assert!(
            page.contains(&format!("`{key}`")),
            "docs/operator.md lacks {key}"
        );
    }
}

/// The daemon's Deployment sets the security context as the operator sets its operand's:
/// the same container context, and the pod's `runAsNonRoot` and seccomp profile, with no
/// fixed user on either.
#[test]
fn the_deployment_has_the_operands_security_context() {
    let cronjob = captured("cronjob.yaml");
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let rendered =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/rendered/konflux-telemetry.yaml");
    let objects = yaml_documents(&rendered);
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the Deployment in deploy/rendered");
    let ours = &deployment["spec"]["template"]["spec"];
    // The operand's container context, each setting the same in ours; what ours adds is
    // only a repetition of the pod's (runAsNonRoot, the seccomp profile).
    let (theirs_c, ours_c) = (
        &pod["containers"][0]["securityContext"],
        &ours["containers"][0]["securityContext"],
    );
    for (k, v) in theirs_c
        .as_object()
        .expect("the operand's container context")
    {
        assert_eq!(&ours_c[k], v, "the container's {k}");
    }
    for (k, v) in ours_c.as_object().expect("our container context") {
        if theirs_c.get(k).is_none() {
            assert_eq!(
                &pod["securityContext"][k], v,
                "ours adds {k} beyond the pod's"
            );
        }
    }
    assert_eq!(ours["securityContext"], pod["securityContext"], "the pod's");
    for sc in [
        &pod["securityContext"],
        &pod["containers"][0]["securityContext"],
    ] {
        assert!(sc.get("runAsUser").is_none() && sc.get("runAsGroup").is_none());
    }
    assert!(operator_prose().contains("no `runAsUser`"));
}

/// The operator's ClusterRole, rule by rule, as the page's table states it (column
/// "segment-bridge").
#[test]
fn the_page_states_the_operators_cluster_role() {
    let page = operator_page();
    let role = captured("clusterrole.yaml");
    // "`group` `resource`" -> what the operator grants, as the page writes it.
    let mut granted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let names: Vec<&str> = rule["resourceNames"]
            .as_array()
            .map(|n| n.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let said = if names.is_empty() {
            verbs.join(", ")
        } else {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("{} {}", verbs.join(", "), names.join(", "))
        };
        let group = rule["apiGroups"][0].as_str().expect("group");
        let resources: Vec<String> = rule["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(Value::as_str)
            .map(|r| format!("`{r}`"))
            .collect();
        let key = format!(
            "`{}` {}",
            if group.is_empty() { "\"\"" } else { group },
            resources.join(", ")
        );
        granted.entry(key).or_default().push(said);
    }
    let table: BTreeMap<String, String> = page
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 3).then(|| (cells[1].to_owned(), cells[2].to_owned()))
        })
        .collect();
    for (resource, rules) in &granted {
        let want = rules.join("; ");
        assert_eq!(
            table.get(resource),
            Some(&want),
            "docs/operator.md's ClusterRole table, row {resource}"
        );
    }
}
