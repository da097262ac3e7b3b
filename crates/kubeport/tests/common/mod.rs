//! Shared harness for end-to-end tests: a real `kubeport server` process with its own data
//! directory and port, and the real kubectl with a private HOME (kubectl caches discovery).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn kubeport_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubeport"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn seed(path: &str) -> PathBuf {
    repo_root().join("examples").join(path)
}

/// The kubectl dispatcher on PATH, or None (tests then skip with a printed reason).
pub fn kubectl_path() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// A versioned kubectl (`kubectl.1.27`) installed beside the dispatcher.
pub fn versioned_kubectl(minor: u32) -> Option<PathBuf> {
    let dispatcher = std::fs::canonicalize(kubectl_path()?).ok()?;
    let p = dispatcher.parent()?.join(format!("kubectl.1.{minor}"));
    p.exists().then_some(p)
}

#[macro_export]
macro_rules! require_kubectl {
    () => {
        if common::kubectl_path().is_none() {
            eprintln!("SKIP: kubectl is not on PATH; this test drives the real kubectl");
            return;
        }
    };
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub kubeconfig: PathBuf,
    pub child: Option<Child>,
    pub port: u16,
    pub extra_args: Vec<String>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut s = TestServer {
            dir,
            home,
            kubeconfig,
            child: None,
            port: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn(0);
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server process (again) on the same data dir; port 0 picks a free one.
    pub fn spawn(&mut self, port: u16) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(kubeport_bin())
            .args(["server", "--data-dir"])
            .arg(self.data_dir())
            .args(["--secure-port", &port.to_string(), "--kubeconfig-out"])
            .arg(&self.kubeconfig)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning kubeport server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.kubeconfig) {
                if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("server:")) {
                    let url = line.trim().trim_start_matches("server:").trim();
                    self.port = url
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .trim_matches('/')
                        .parse()
                        .unwrap();
                    break;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Ends the server with SIGKILL (crash) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Ends the server with SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), 15);
        c.wait().unwrap()
    }

    pub fn kubectl_with(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new(bin)
            .args(args)
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
            .stdin(Stdio::null())
            .output()
            .expect("running kubectl")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&kubectl_path().expect("kubectl on PATH"), args)
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    /// PEM files extracted from the kubeconfig, for curl: (ca, cert, key).
    pub fn client_pems(&self) -> (PathBuf, PathBuf, PathBuf) {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let field = |name: &str| -> Vec<u8> {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("{name} in kubeconfig"));
            let b64 = line.split(':').nth(1).unwrap().trim();
            base64_decode(b64)
        };
        let d = self.dir.path();
        std::fs::write(d.join("ca.pem"), field("certificate-authority-data")).unwrap();
        std::fs::write(d.join("cert.pem"), field("client-certificate-data")).unwrap();
        std::fs::write(d.join("key.pem"), field("client-key-data")).unwrap();
        (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"))
    }

    /// curl against the server; `with_cert` presents the admin client certificate.
    pub fn curl(&self, with_cert: bool, args: &[&str]) -> Output {
        let (ca, cert, key) = self.client_pems();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"]).arg(&ca);
        if with_cert {
            cmd.arg("--cert").arg(&cert).arg("--key").arg(&key);
        }
        cmd.args(args).output().expect("running curl")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|x| *x == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Splits `kubectl get` output into rows of whitespace-separated cells.
pub fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect()
}

pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}
