//! The real kubectl (a Go client) reading kubeport's kubeconfigs and speaking TLS with
//! kubeport's certificates. Skipped, with the reason printed, when kubectl is not on PATH.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use kubeport_pki::{
    identity_from_der, load_or_create, merge_into, write_kubeconfig, KubeconfigEntry,
};

fn kubectl_available() -> bool {
    match Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "skipping: `kubectl version --client` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("skipping: kubectl is not on PATH ({e})");
            false
        }
    }
}

/// Runs kubectl with HOME (and so its caches) inside `home` and no KUBECONFIG.
fn kubectl(home: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .expect("running kubectl")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn lines_trimmed(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

fn real_entry(dir: &Path, name: &str, server: &str) -> KubeconfigEntry {
    let pki = load_or_create(dir, &[], &[]).unwrap();
    let (cert, key) = pki.issue_admin_client_cert().unwrap();
    KubeconfigEntry {
        name: name.to_string(),
        server: server.to_string(),
        ca_pem: pki.ca_cert_pem,
        client_cert_pem: cert,
        client_key_pem: key,
    }
}

#[test]
fn kubectl_reads_a_rendered_kubeconfig() {
    if !kubectl_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = home.path().join("kind-demo.kubeconfig");
    let entry = real_entry(data.path(), "kind-service-demo", "https://127.0.0.1:6443");
    write_kubeconfig(&path, &entry).unwrap();
    let file = path.to_str().unwrap();

    let current = kubectl(
        home.path(),
        &[
            "--kubeconfig",
            file,
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.current-context}",
        ],
    );
    assert_eq!(stdout_ok(&current), "kind-service-demo");

    let contexts = kubectl(
        home.path(),
        &["--kubeconfig", file, "config", "get-contexts"],
    );
    assert_eq!(
        lines_trimmed(&stdout_ok(&contexts)),
        [
            "CURRENT   NAME                CLUSTER             AUTHINFO            NAMESPACE",
            "*         kind-service-demo   kind-service-demo   kind-service-demo",
        ]
    );

    // kubectl decodes the inline credentials to exactly what kubeport issued.
    let server = kubectl(
        home.path(),
        &[
            "--kubeconfig",
            file,
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    assert_eq!(stdout_ok(&server), "https://127.0.0.1:6443");
    let flattened = kubectl(
        home.path(),
        &["--kubeconfig", file, "config", "view", "--minify"],
    );
    let text = stdout_ok(&flattened);
    assert!(
        text.contains("certificate-authority-data: DATA+OMITTED"),
        "{text}"
    );
    assert!(text.contains("client-key-data: DATA+OMITTED"), "{text}");
}

#[test]
fn kubectl_reads_a_merged_kubeconfig() {
    if !kubectl_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = home.path().join(".kube/config");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A user's file, including a namespace YAML 1.1 would read as a boolean if unquoted.
    fs::write(
        &path,
        r#"apiVersion: v1
kind: Config
clusters:
- name: docker-desktop
  cluster:
    server: https://kubernetes.docker.internal:6443
contexts:
- name: docker-desktop
  context:
    cluster: docker-desktop
    user: docker-desktop
    namespace: "on"
current-context: docker-desktop
users:
- name: docker-desktop
  user:
    token: "0777"
"#,
    )
    .unwrap();
    merge_into(
        &path,
        &real_entry(data.path(), "kind-service-demo", "https://127.0.0.1:6443"),
    )
    .unwrap();

    // Without --kubeconfig: kubectl finds $HOME/.kube/config like kubeport's default path.
    let contexts = kubectl(home.path(), &["config", "get-contexts"]);
    assert_eq!(
        lines_trimmed(&stdout_ok(&contexts)),
        [
            "CURRENT   NAME                CLUSTER             AUTHINFO            NAMESPACE",
            "          docker-desktop      docker-desktop      docker-desktop      on",
            "*         kind-service-demo   kind-service-demo   kind-service-demo",
        ]
    );
    let token = kubectl(
        home.path(),
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.token}",
        ],
    );
    assert_eq!(stdout_ok(&token), "0777");
    let current = kubectl(home.path(), &["config", "current-context"]);
    assert_eq!(stdout_ok(&current), "kind-service-demo\n");

    kubeport_pki::remove_from(&path, "kind-service-demo").unwrap();
    let contexts = kubectl(home.path(), &["config", "get-contexts"]);
    assert_eq!(
        lines_trimmed(&stdout_ok(&contexts)),
        [
            "CURRENT   NAME             CLUSTER          AUTHINFO         NAMESPACE",
            "          docker-desktop   docker-desktop   docker-desktop   on",
        ]
    );
}

/// A minimal HTTPS server with the API server's TLS setup that answers every GET with a
/// version document extended by the identity of the client certificate it saw.
async fn version_server(
    pki: &kubeport_pki::Pki,
) -> (u16, Arc<Mutex<Vec<Option<(String, Vec<String>)>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(common::server_config(pki));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        // Bounded: kubectl makes a couple of connections at most.
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| identity_from_der(&chain[0]));
                record.lock().unwrap().push(identity.clone());
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (user, groups) = identity.unwrap_or_default();
                let groups: Vec<String> = groups.iter().map(|g| format!("\"{g}\"")).collect();
                let body = format!(
                    "{{\"major\":\"1\",\"minor\":\"32\",\"gitVersion\":\"v1.32.5\",\
                     \"user\":\"{user}\",\"groups\":[{}]}}",
                    groups.join(",")
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_verifies_the_serving_cert_and_presents_the_client_cert() {
    if !kubectl_available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let pki = load_or_create(data.path(), &[], &[]).unwrap();
    let (port, seen) = version_server(&pki).await;
    let path = home.path().join("config");
    for server in [
        format!("https://127.0.0.1:{port}"),
        format!("https://localhost:{port}"),
    ] {
        let (cert, key) = pki.issue_admin_client_cert().unwrap();
        let entry = KubeconfigEntry {
            name: "kind-kubeport".to_string(),
            server: server.clone(),
            ca_pem: pki.ca_cert_pem.clone(),
            client_cert_pem: cert,
            client_key_pem: key,
        };
        write_kubeconfig(&path, &entry).unwrap();
        let home_dir = home.path().to_path_buf();
        let file = path.to_str().unwrap().to_string();
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let args = [
                    "--kubeconfig",
                    &file,
                    "--request-timeout=10s",
                    "get",
                    "--raw",
                    "/version",
                ];
                kubectl(&home_dir, &args)
            }),
        )
        .await
        .expect("kubectl finished")
        .unwrap();
        let body = stdout_ok(&out);
        assert!(
            body.contains(r#""user":"kubernetes-admin","groups":["system:masters"]"#),
            "{server}: {body}"
        );
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|identity| identity
            == &Some((
                "kubernetes-admin".to_string(),
                vec!["system:masters".to_string()]
            ))),
        "{seen:?}"
    );
}
