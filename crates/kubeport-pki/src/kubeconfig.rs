//! Kubeconfig files (clientcmd v1 `Config`), written and merged the way kind does.
//!
//! Only the fields kubeport reads or writes are modelled; every other field, at any level,
//! is kept in an `other` map and written back, so merging into a user's kubeconfig never
//! drops their exec plugins, extensions, namespaces or preferences.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::{Mapping, Value};

use crate::fsutil::{read_optional, write_atomic, KubeconfigLock};

/// One cluster's access: `name` names the cluster, the user and the context alike (as kind
/// does with `kind-<cluster>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigEntry {
    pub name: String,
    /// The API server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// A kubeconfig document. Field order follows `kubectl config view`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub clusters: Vec<NamedCluster>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub contexts: Vec<NamedContext>,
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub current_context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Value>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub users: Vec<NamedAuthInfo>,
    /// Fields not modelled above, kept verbatim.
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: Cluster,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Base64 of the CA bundle PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    #[serde(default, deserialize_with = "null_as_default")]
    pub context: Context,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedAuthInfo {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: AuthInfo,
    #[serde(flatten)]
    pub other: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthInfo {
    /// Base64 of the client certificate PEM.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// Base64 of the client key PEM.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    #[serde(flatten)]
    pub other: Mapping,
}

/// kubectl writes `clusters: null` and the like for empty fields.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn unb64(data: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl Kubeconfig {
    /// Parses a kubeconfig; an empty (or comment-only) document is an empty config.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_yaml::from_str(text).context("parsing kubeconfig YAML")?;
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_yaml::from_value(value).context("reading kubeconfig")
    }

    /// A config holding only `entry`, selected as the current context.
    pub fn from_entry(entry: &KubeconfigEntry) -> Self {
        let mut config = Self {
            preferences: Some(Value::Mapping(Mapping::new())),
            ..Self::default()
        };
        config.upsert(entry);
        config
    }

    /// The YAML text, in kubectl's layout, readable by YAML 1.1 and 1.2 parsers alike.
    pub fn to_yaml(&self) -> String {
        let value = serde_yaml::to_value(self).expect("a kubeconfig always serializes");
        crate::yaml::to_string(&value)
    }

    /// Inserts `entry`'s cluster, user and context, replacing same-named ones in place
    /// (appending otherwise), and makes it the current context.
    pub fn upsert(&mut self, entry: &KubeconfigEntry) {
        let cluster = NamedCluster {
            name: entry.name.clone(),
            cluster: Cluster {
                certificate_authority_data: Some(b64(&entry.ca_pem)),
                server: Some(entry.server.clone()),
                other: Mapping::new(),
            },
            other: Mapping::new(),
        };
        let user = NamedAuthInfo {
            name: entry.name.clone(),
            user: AuthInfo {
                client_certificate_data: Some(b64(&entry.client_cert_pem)),
                client_key_data: Some(b64(&entry.client_key_pem)),
                other: Mapping::new(),
            },
            other: Mapping::new(),
        };
        let context = NamedContext {
            name: entry.name.clone(),
            context: Context {
                cluster: entry.name.clone(),
                user: entry.name.clone(),
                ..Context::default()
            },
            other: Mapping::new(),
        };
        replace_or_push(&mut self.clusters, cluster, |c| &c.name);
        replace_or_push(&mut self.users, user, |u| &u.name);
        replace_or_push(&mut self.contexts, context, |c| &c.name);
        self.current_context = entry.name.clone();
        // Some clients (the JavaScript one, notably) insist on these.
        self.api_version.get_or_insert_with(|| "v1".to_string());
        self.kind.get_or_insert_with(|| "Config".to_string());
    }

    /// Removes the cluster, user and context called `name`, and unsets the current context
    /// if it was that one. Returns whether anything changed.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.clusters.len() + self.users.len() + self.contexts.len();
        self.clusters.retain(|c| c.name != name);
        self.users.retain(|u| u.name != name);
        self.contexts.retain(|c| c.name != name);
        let mut changed = before != self.clusters.len() + self.users.len() + self.contexts.len();
        if self.current_context == name {
            self.current_context.clear();
            changed = true;
        }
        changed
    }

    /// The entry reachable through context `context_name`, when its cluster and user exist
    /// and carry inline (`*-data`) credentials.
    pub fn entry(&self, context_name: &str) -> Option<KubeconfigEntry> {
        let context = &self
            .contexts
            .iter()
            .find(|c| c.name == context_name)?
            .context;
        let cluster = &self
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)?
            .cluster;
        let user = &self.users.iter().find(|u| u.name == context.user)?.user;
        Some(KubeconfigEntry {
            name: context_name.to_string(),
            server: cluster.server.clone()?,
            ca_pem: unb64(cluster.certificate_authority_data.as_deref()?)?,
            client_cert_pem: unb64(user.client_certificate_data.as_deref()?)?,
            client_key_pem: unb64(user.client_key_data.as_deref()?)?,
        })
    }
}

fn replace_or_push<T>(items: &mut Vec<T>, item: T, name: impl Fn(&T) -> &String) {
    match items
        .iter_mut()
        .find(|existing| name(existing) == name(&item))
    {
        Some(existing) => *existing = item,
        None => items.push(item),
    }
}

/// A fresh kubeconfig with one cluster, user and context named `entry.name`, the context
/// selected, credentials inline as base64 `*-data` fields (as kind writes them).
pub fn render_kubeconfig(entry: &KubeconfigEntry) -> String {
    Kubeconfig::from_entry(entry).to_yaml()
}

/// Writes a kubeconfig holding only `entry` to `path` (mode 0600), creating parent
/// directories.
pub fn write_kubeconfig(path: &Path, entry: &KubeconfigEntry) -> Result<()> {
    create_parent(path)?;
    write_atomic(path, render_kubeconfig(entry).as_bytes(), 0o600)
}

/// Merges `entry` into the kubeconfig at `path` the way `kind create cluster` does: its
/// cluster, user and context are inserted or replaced, the current context switches to
/// it, everything else in the file is kept. Creates the file (0600) and its directories
/// when missing. Holds `<path>.lock` (client-go's lock protocol) for the read-modify-write
/// and replaces the file atomically, so concurrent writers never lose each other's entries.
pub fn merge_into(path: &Path, entry: &KubeconfigEntry) -> Result<()> {
    create_parent(path)?;
    let _lock = KubeconfigLock::acquire(path)?;
    let (target, mut config, mode) = read_for_update(path)?;
    config.upsert(entry);
    write_atomic(&target, config.to_yaml().as_bytes(), mode)
}

/// Removes the cluster, user and context called `name` from the kubeconfig at `path` and
/// unsets the current context if it pointed to it (what `kind delete cluster` does). A
/// missing file or entry is not an error.
pub fn remove_from(path: &Path, name: &str) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let _lock = KubeconfigLock::acquire(path)?;
    let (target, mut config, mode) = read_for_update(path)?;
    if config.remove(name) {
        write_atomic(&target, config.to_yaml().as_bytes(), mode)?;
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))
        }
        _ => Ok(()),
    }
}

/// Reads the kubeconfig at `path` for rewriting. Returns the file to replace (symlinks
/// resolved, so a linked kubeconfig stays a link), its content, and the mode to keep.
fn read_for_update(path: &Path) -> Result<(PathBuf, Kubeconfig, u32)> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mode = fs::metadata(&target)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let config = match read_optional(&target)? {
        Some(text) => Kubeconfig::parse(&text)
            .with_context(|| format!("{} is not a valid kubeconfig", path.display()))?,
        None => Kubeconfig::default(),
    };
    Ok((target, config, mode))
}

/// The kubeconfig file kind and kubectl write to: with `$KUBECONFIG` set, its only entry,
/// or (for a list) the first listed file that exists, else the last one; without it,
/// `$HOME/.kube/config`.
pub fn default_kubeconfig_path() -> PathBuf {
    kubeconfig_path_from(env::var_os("KUBECONFIG"), env::var_os("HOME"), |p| {
        p.is_file()
    })
}

fn kubeconfig_path_from(
    kubeconfig_env: Option<OsString>,
    home: Option<OsString>,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    let mut listed: Vec<PathBuf> = Vec::new();
    if let Some(value) = kubeconfig_env {
        for p in env::split_paths(&value) {
            if !p.as_os_str().is_empty() && !listed.contains(&p) {
                listed.push(p);
            }
        }
    }
    match listed.len() {
        0 => home
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".kube")
            .join("config"),
        1 => listed.remove(0),
        _ => match listed.iter().position(|p| exists(p)) {
            Some(i) => listed.swap_remove(i),
            None => listed.pop().expect("two or more entries"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_for(env: Option<&str>, existing: &[&str]) -> PathBuf {
        kubeconfig_path_from(env.map(OsString::from), Some("/home/u".into()), |p| {
            existing.iter().any(|e| Path::new(e) == p)
        })
    }

    #[test]
    fn default_path_follows_kind() {
        assert_eq!(path_for(None, &[]), PathBuf::from("/home/u/.kube/config"));
        assert_eq!(
            path_for(Some(""), &[]),
            PathBuf::from("/home/u/.kube/config")
        );
        assert_eq!(path_for(Some("/a"), &[]), PathBuf::from("/a"));
        assert_eq!(
            path_for(Some("/a:/b:/c"), &["/b", "/c"]),
            PathBuf::from("/b")
        );
        assert_eq!(path_for(Some("/a::/b:/a"), &[]), PathBuf::from("/b"));
    }

    #[test]
    fn empty_documents_and_nulls_parse() {
        assert_eq!(Kubeconfig::parse("").unwrap(), Kubeconfig::default());
        assert_eq!(
            Kubeconfig::parse("# nothing\n").unwrap(),
            Kubeconfig::default()
        );
        let c = Kubeconfig::parse(
            "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n",
        )
        .unwrap();
        assert!(c.clusters.is_empty() && c.users.is_empty() && c.contexts.is_empty());
        assert_eq!(c.current_context, "");
    }
}
