//! What a container runs. Images are not pulled: the image selects a host program.
//!
//! - a container with `command` (or, without one, `args`) runs that command line with the
//!   host's programs (images whose entrypoint wraps the command are mimicked where it matters:
//!   `curlimages/curl` prepends `curl` when the first argument is not a program, as its
//!   entrypoint script does);
//! - `nginx` (any registry/tag) without a command runs the host's nginx with a per-pod
//!   configuration and document root;
//! - `registry.k8s.io/e2e-test-images/agnhost` runs kubeport's built-in agnhost;
//! - anything else without a command does not start.

use k8s_openapi::api::core::v1::Container;

/// The waiting reason of a container whose image kubeport cannot stand in for.
pub const IMAGE_NOT_SUPPORTED: &str = "ImageNotSupported";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// argv (after `$(VAR)` expansion), run with the host's programs.
    Command(Vec<String>),
    /// The host's nginx serving the pod's document root on `port`.
    Nginx { port: u16 },
    /// The built-in agnhost with these arguments (`netexec --http-port=8080`).
    Agnhost(Vec<String>),
    /// Cannot run: the waiting message.
    Unsupported(String),
}

/// The image's repository path without registry host, tag or digest:
/// `docker.io/library/nginx:1.27` → `nginx`, `registry.k8s.io/e2e-test-images/agnhost:2.39` →
/// `registry.k8s.io/e2e-test-images/agnhost` (non-Docker Hub registries are kept).
pub fn image_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    // A tag is the part after the last ':' if it has no '/' (a ':' before a '/' is a port).
    let without_tag = match without_digest.rfind(':') {
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    };
    let mut repo = without_tag.to_string();
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = repo.strip_prefix(prefix) {
            repo = rest.to_string();
        }
    }
    if let Some(rest) = repo.strip_prefix("library/") {
        repo = rest.to_string();
    }
    repo
}

/// The image reference as a container runtime reports it: registry and tag filled in
/// (`nginx` → `docker.io/library/nginx:latest`).
pub fn normalized_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full
}

fn is_nginx(repo: &str) -> bool {
    repo == "nginx" || repo.ends_with("/nginx")
}

fn is_agnhost(repo: &str) -> bool {
    repo == "registry.k8s.io/e2e-test-images/agnhost"
        || repo == "k8s.gcr.io/e2e-test-images/agnhost"
        || repo.ends_with("/agnhost")
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Chooses the program of a container whose `command` and `args` are already expanded.
/// `on_path` says whether a name is a program on the host's PATH (for entrypoint mimicry).
pub fn select(
    container: &Container,
    command: &[String],
    args: &[String],
    on_path: &dyn Fn(&str) -> bool,
) -> Program {
    let image = container.image.as_deref().unwrap_or("");
    let repo = image_repository(image);
    if is_agnhost(&repo) {
        if command.is_empty() {
            return Program::Agnhost(args.to_vec());
        }
        if basename(&command[0]) == "agnhost" {
            let mut a: Vec<String> = command[1..].to_vec();
            a.extend(args.iter().cloned());
            return Program::Agnhost(a);
        }
    }
    if !command.is_empty() {
        let mut argv = command.to_vec();
        argv.extend(args.iter().cloned());
        return Program::Command(argv);
    }
    if is_nginx(&repo) && (args.is_empty() || matches!(basename(&args[0]), "nginx" | "nginx-debug"))
    {
        let port = container
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| p.container_port)
            .filter(|p| (1..=65535).contains(p))
            .unwrap_or(80) as u16;
        return Program::Nginx { port };
    }
    if !args.is_empty() {
        if repo == "curlimages/curl" && (args[0].starts_with('-') || !on_path(&args[0])) {
            let mut argv = vec!["curl".to_string()];
            argv.extend(args.iter().cloned());
            return Program::Command(argv);
        }
        return Program::Command(args.to_vec());
    }
    Program::Unsupported(format!(
        "kubeport runs no container images: image {image:?} needs a command. Supported: a container \
         with command/args (runs the node's host programs, e.g. sh, curl), image nginx (the host's \
         nginx serving /usr/share/nginx/html), image registry.k8s.io/e2e-test-images/agnhost \
         (serve-hostname, netexec)"
    ))
}

/// The `imageID` reported for a program (no image digest exists: it names what runs).
pub fn image_id(program: &Program) -> String {
    match program {
        Program::Command(_) => "kubeport://host-programs".to_string(),
        Program::Nginx { .. } => "kubeport://host-programs/nginx".to_string(),
        Program::Agnhost(_) => "kubeport://builtin/agnhost".to_string(),
        Program::Unsupported(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container(image: &str) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            ..Default::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn nothing_on_path(_: &str) -> bool {
        false
    }

    #[test]
    fn repositories() {
        assert_eq!(image_repository("nginx"), "nginx");
        assert_eq!(image_repository("nginx:1.27.0"), "nginx");
        assert_eq!(image_repository("docker.io/library/nginx:latest"), "nginx");
        assert_eq!(
            image_repository("curlimages/curl:latest"),
            "curlimages/curl"
        );
        assert_eq!(
            image_repository("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "registry.k8s.io/e2e-test-images/agnhost"
        );
        assert_eq!(
            image_repository("localhost:5000/nginx@sha256:abcd"),
            "localhost:5000/nginx"
        );
        assert_eq!(normalized_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalized_image("curlimages/curl:8.1"),
            "docker.io/curlimages/curl:8.1"
        );
        assert_eq!(
            normalized_image("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "registry.k8s.io/e2e-test-images/agnhost:2.53"
        );
    }

    #[test]
    fn nginx_uses_first_container_port_or_80() {
        let c = container("nginx:latest");
        assert_eq!(
            select(&c, &[], &[], &nothing_on_path),
            Program::Nginx { port: 80 }
        );
        let mut c = container("docker.io/library/nginx:1.27");
        c.ports = Some(vec![ContainerPort {
            container_port: 8080,
            ..Default::default()
        }]);
        assert_eq!(
            select(&c, &[], &[], &nothing_on_path),
            Program::Nginx { port: 8080 }
        );
        // A command overrides the image.
        assert_eq!(
            select(&c, &s(&["sh", "-c"]), &s(&["echo hi"]), &nothing_on_path),
            Program::Command(s(&["sh", "-c", "echo hi"]))
        );
    }

    #[test]
    fn agnhost_args_or_agnhost_command() {
        let c = container("registry.k8s.io/e2e-test-images/agnhost:2.39");
        assert_eq!(
            select(
                &c,
                &[],
                &s(&["netexec", "--http-port=8080"]),
                &nothing_on_path
            ),
            Program::Agnhost(s(&["netexec", "--http-port=8080"]))
        );
        assert_eq!(
            select(
                &c,
                &s(&["/agnhost", "serve-hostname"]),
                &[],
                &nothing_on_path
            ),
            Program::Agnhost(s(&["serve-hostname"]))
        );
    }

    #[test]
    fn args_only_run_as_command_and_curl_image_prepends_curl() {
        let c = container("curlimages/curl:latest");
        assert_eq!(
            select(&c, &[], &s(&["curl", "-s", "http://x"]), &|p| p == "curl"),
            Program::Command(s(&["curl", "-s", "http://x"]))
        );
        assert_eq!(
            select(&c, &[], &s(&["-s", "http://x"]), &|p| p == "curl"),
            Program::Command(s(&["curl", "-s", "http://x"]))
        );
        let c = container("busybox");
        assert_eq!(
            select(&c, &[], &s(&["sleep", "10"]), &nothing_on_path),
            Program::Command(s(&["sleep", "10"]))
        );
    }

    #[test]
    fn other_images_without_command_are_unsupported_with_a_clear_message() {
        let c = container("redis:7");
        let Program::Unsupported(msg) = select(&c, &[], &[], &nothing_on_path) else {
            panic!("redis must not start");
        };
        assert!(msg.contains("\"redis:7\""), "{msg}");
        assert!(msg.contains("nginx") && msg.contains("agnhost") && msg.contains("command"));
    }
}
