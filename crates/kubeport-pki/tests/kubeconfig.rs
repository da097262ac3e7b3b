use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use kubeport_pki::{
    merge_into, remove_from, render_kubeconfig, write_kubeconfig, Kubeconfig, KubeconfigEntry,
};

fn entry(name: &str, port: u16) -> KubeconfigEntry {
    KubeconfigEntry {
        name: name.to_string(),
        server: format!("https://127.0.0.1:{port}"),
        ca_pem: format!("-----BEGIN CERTIFICATE-----\nCA-{name}\n-----END CERTIFICATE-----\n"),
        client_cert_pem: format!(
            "-----BEGIN CERTIFICATE-----\nCLIENT-{name}\n-----END CERTIFICATE-----\n"
        ),
        client_key_pem: format!(
            "-----BEGIN PRIVATE KEY-----\nKEY-{name}\n-----END PRIVATE KEY-----\n"
        ),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> Kubeconfig {
    Kubeconfig::parse(&fs::read_to_string(path).unwrap()).unwrap()
}

/// A kubeconfig as a user might have it: another cluster with an exec plugin, extensions
/// and fields kubeport does not model.
const USER_CONFIG: &str = r#"apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: docker-desktop
  cluster:
    server: https://kubernetes.docker.internal:6443
    insecure-skip-tls-verify: true
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: foo
contexts:
- name: docker-desktop
  context:
    cluster: docker-desktop
    user: docker-desktop
    namespace: team-a
current-context: docker-desktop
users:
- name: docker-desktop
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: get-token
      args: ["--cluster", "docker-desktop"]
      interactiveMode: Never
extensions:
- name: my-tool
  extension:
    last-used: "2024-01-01"
"#;

#[test]
fn rendered_kubeconfig_has_kind_layout() {
    let e = entry("kind-demo", 6443);
    let text = render_kubeconfig(&e);
    let ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBLWtpbmQtZGVtbwotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";
    let expected_head = format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:6443\n  name: kind-demo\n\
         contexts:\n\
         - context:\n    cluster: kind-demo\n    user: kind-demo\n  name: kind-demo\n\
         current-context: kind-demo\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: kind-demo\n  user:\n    client-certificate-data: "
    );
    assert!(text.starts_with(&expected_head), "{text}");
    assert!(text.contains("\n    client-key-data: "), "{text}");
}

#[test]
fn render_parse_round_trip() {
    let e = entry("kind-demo", 6443);
    let parsed = Kubeconfig::parse(&render_kubeconfig(&e)).unwrap();
    assert_eq!(parsed.current_context, "kind-demo");
    assert_eq!(parsed.entry("kind-demo"), Some(e.clone()));
    assert_eq!(parsed.to_yaml(), render_kubeconfig(&e));
    assert_eq!(parsed.entry("missing"), None);
}

#[test]
fn write_creates_directories_with_private_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/kubeconfig");
    write_kubeconfig(&path, &entry("kind-x", 1)).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(read(&path).entry("kind-x"), Some(entry("kind-x", 1)));
}

#[test]
fn merge_keeps_existing_contexts_and_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, USER_CONFIG).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let before = Kubeconfig::parse(USER_CONFIG).unwrap();

    merge_into(&path, &entry("kind-demo", 6443)).unwrap();
    let after = read(&path);
    assert_eq!(after.current_context, "kind-demo");
    assert_eq!(after.entry("kind-demo"), Some(entry("kind-demo", 6443)));
    // The user's entries and every field kubeport does not model are untouched.
    assert_eq!(after.clusters[0], before.clusters[0]);
    assert_eq!(after.contexts[0], before.contexts[0]);
    assert_eq!(after.users[0], before.users[0]);
    assert_eq!(after.preferences, before.preferences);
    assert_eq!(after.other, before.other);
    let text = fs::read_to_string(&path).unwrap();
    for kept in [
        "insecure-skip-tls-verify: true",
        "audience: foo",
        "namespace: team-a",
        "command: get-token",
        "interactiveMode: Never",
        "name: my-tool",
        "colors: true",
        "last-used: \"2024-01-01\"",
    ] {
        assert!(text.contains(kept), "lost {kept:?}:\n{text}");
    }
    assert_eq!(mode(&path), 0o640, "the user's file mode is kept");
    assert!(!dir.path().join("config.lock").exists());

    // Merging again replaces the entry in place rather than duplicating it.
    merge_into(&path, &entry("kind-demo", 7443)).unwrap();
    let again = read(&path);
    assert_eq!(again.clusters.len(), 2);
    assert_eq!(again.users.len(), 2);
    assert_eq!(again.contexts.len(), 2);
    assert_eq!(again.entry("kind-demo"), Some(entry("kind-demo", 7443)));
}

#[test]
fn merge_creates_missing_file_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".kube/config");
    merge_into(&path, &entry("kind-a", 1)).unwrap();
    assert_eq!(mode(&path), 0o600);
    let config = read(&path);
    assert_eq!(config.current_context, "kind-a");
    assert_eq!(config.api_version.as_deref(), Some("v1"));
    assert_eq!(config.kind.as_deref(), Some("Config"));
}

#[test]
fn merge_into_empty_or_kubectl_emptied_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, "").unwrap();
    merge_into(&path, &entry("kind-a", 1)).unwrap();
    assert_eq!(read(&path).entry("kind-a"), Some(entry("kind-a", 1)));

    fs::write(
        &path,
        "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n",
    )
    .unwrap();
    merge_into(&path, &entry("kind-b", 2)).unwrap();
    let config = read(&path);
    assert_eq!(config.entry("kind-b"), Some(entry("kind-b", 2)));
    assert_eq!(config.clusters.len(), 1);
}

#[test]
fn merge_refuses_to_overwrite_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, "clusters: [unclosed\n").unwrap();
    let err = merge_into(&path, &entry("kind-a", 1)).unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a valid kubeconfig"),
        "{err:#}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "clusters: [unclosed\n");
    assert!(!dir.path().join("config.lock").exists());
}

#[test]
fn merge_through_a_symlink_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    fs::write(&real, USER_CONFIG).unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    merge_into(&link, &entry("kind-a", 1)).unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read(&real).entry("kind-a"), Some(entry("kind-a", 1)));
}

#[test]
fn remove_drops_entry_and_unsets_current_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    fs::write(&path, USER_CONFIG).unwrap();
    merge_into(&path, &entry("kind-demo", 6443)).unwrap();

    remove_from(&path, "kind-demo").unwrap();
    let config = read(&path);
    assert_eq!(config.current_context, "");
    assert_eq!(config.entry("kind-demo"), None);
    assert_eq!(config, {
        let mut original = Kubeconfig::parse(USER_CONFIG).unwrap();
        original.current_context.clear();
        original
    });

    // Removing what is not there, or from a missing file, is fine and changes nothing.
    let text = fs::read_to_string(&path).unwrap();
    remove_from(&path, "kind-demo").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
    remove_from(&dir.path().join("nope"), "kind-demo").unwrap();
    assert!(!dir.path().join("nope").exists());
}

#[test]
fn remove_keeps_current_context_pointing_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    merge_into(&path, &entry("kind-a", 1)).unwrap();
    merge_into(&path, &entry("kind-b", 2)).unwrap();
    remove_from(&path, "kind-a").unwrap();
    let config = read(&path);
    assert_eq!(config.current_context, "kind-b");
    assert_eq!(config.clusters.len(), 1);
    assert_eq!(config.entry("kind-b"), Some(entry("kind-b", 2)));
}

#[test]
fn concurrent_merges_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("config"));
    fs::write(&*path, USER_CONFIG).unwrap();
    const WRITERS: u16 = 8;
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (path, barrier) = (path.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                merge_into(&path, &entry(&format!("kind-{i}"), 6000 + i))
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let config = read(&path);
    for i in 0..WRITERS {
        let name = format!("kind-{i}");
        assert_eq!(
            config.entry(&name),
            Some(entry(&name, 6000 + i)),
            "{name} lost"
        );
    }
    assert_eq!(config.clusters.len(), WRITERS as usize + 1);
    assert!(config.current_context.starts_with("kind-"));
    assert!(config.contexts.iter().any(|c| c.name == "docker-desktop"));
    assert!(!dir.path().join("config.lock").exists());
    // Only the kubeconfig remains: no lock or temporary files.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}
