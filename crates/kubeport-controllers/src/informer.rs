//! Shared informers: a kube-rs watcher feeding an in-memory store with secondary indexes, and
//! change handlers that see the previous and the new version of each object (controllers use
//! them to enqueue keys, including for label changes that move an object between owners).

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

/// `namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKey).
pub type Key = String;

pub fn key(namespace: Option<&str>, name: &str) -> Key {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

pub fn key_of<K: Resource>(obj: &K) -> Key {
    key(
        obj.meta().namespace.as_deref(),
        obj.meta().name.as_deref().unwrap_or_default(),
    )
}

/// Splits a key into namespace (empty for cluster-scoped) and name.
pub fn split_key(k: &str) -> (&str, &str) {
    k.split_once('/').unwrap_or(("", k))
}

type Handler<K> = Box<dyn Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync>;
type IndexFn<K> = Box<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct State<K> {
    objects: HashMap<Key, Arc<K>>,
    /// index name -> index value -> keys.
    indexes: HashMap<&'static str, HashMap<String, HashSet<Key>>>,
}

struct Inner<K> {
    state: RwLock<State<K>>,
    index_fns: Vec<(&'static str, IndexFn<K>)>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

/// A watched, indexed cache of one resource.
pub struct Informer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Builds an informer with its indexes (indexes are fixed before it starts).
pub struct InformerBuilder<K> {
    index_fns: Vec<(&'static str, IndexFn<K>)>,
}

impl<K> Default for InformerBuilder<K> {
    fn default() -> Self {
        InformerBuilder {
            index_fns: Vec::new(),
        }
    }
}

impl<K> InformerBuilder<K> {
    pub fn index(
        mut self,
        name: &'static str,
        f: impl Fn(&K) -> Vec<String> + Send + Sync + 'static,
    ) -> Self {
        self.index_fns.push((name, Box::new(f)));
        self
    }

    pub fn build(self) -> Informer<K> {
        let (synced, _) = tokio::sync::watch::channel(false);
        Informer {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    objects: HashMap::new(),
                    indexes: HashMap::new(),
                }),
                index_fns: self.index_fns,
                handlers: RwLock::new(Vec::new()),
                synced,
            }),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn builder() -> InformerBuilder<K> {
        InformerBuilder::default()
    }

    /// Registers a change handler: `(None, Some(new))` add, `(Some(old), Some(new))` update,
    /// `(Some(old), None)` delete. Handlers run on the informer's task and must be quick.
    pub fn on_change(&self, f: impl Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync + 'static) {
        self.inner.handlers.write().unwrap().push(Box::new(f));
    }

    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.inner.state.read().unwrap().objects.get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<K>> {
        self.inner
            .state
            .read()
            .unwrap()
            .objects
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.state.read().unwrap().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects whose index `name` produced `value`.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        let s = self.inner.state.read().unwrap();
        let Some(keys) = s.indexes.get(name).and_then(|i| i.get(value)) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| s.objects.get(k).cloned())
            .collect()
    }

    /// Number of keys under an index value (to pick the most selective index term).
    pub fn index_count(&self, name: &str, value: &str) -> usize {
        self.inner
            .state
            .read()
            .unwrap()
            .indexes
            .get(name)
            .and_then(|i| i.get(value))
            .map_or(0, |k| k.len())
    }

    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits until the first complete list has been stored.
    pub async fn wait_synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Starts watching; the task runs until aborted, retrying with kube-rs's default backoff.
    pub fn run(&self, api: Api<K>, config: watcher::Config) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            let mut buffer: Option<HashMap<Key, Arc<K>>> = None;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Apply(obj)) => this.apply(Arc::new(trim(obj))),
                    Ok(Event::Delete(obj)) => this.delete(&key_of(&obj)),
                    Ok(Event::Init) => buffer = Some(HashMap::new()),
                    Ok(Event::InitApply(obj)) => {
                        let obj = Arc::new(trim(obj));
                        buffer
                            .get_or_insert_with(HashMap::new)
                            .insert(key_of(obj.as_ref()), obj);
                    }
                    Ok(Event::InitDone) => {
                        this.replace(buffer.take().unwrap_or_default());
                        this.inner.synced.send_replace(true);
                    }
                    Err(e) => tracing::debug!("watch of {} failed: {e}", type_name::<K>()),
                }
            }
        })
    }

    /// Inserts or replaces an object, updating indexes, then calls handlers.
    pub fn apply(&self, obj: Arc<K>) {
        let k = key_of(obj.as_ref());
        let old = {
            let mut s = self.inner.state.write().unwrap();
            let old = s.objects.get(&k).cloned();
            if let Some(o) = &old {
                if same_version(o.as_ref(), obj.as_ref()) {
                    return;
                }
                self.unindex(&mut s, &k, o);
            }
            self.index(&mut s, &k, &obj);
            s.objects.insert(k, Arc::clone(&obj));
            old
        };
        self.notify(old.as_ref(), Some(&obj));
    }

    /// Removes an object by key, then calls handlers.
    pub fn delete(&self, k: &str) {
        let old = {
            let mut s = self.inner.state.write().unwrap();
            let Some(old) = s.objects.remove(k) else {
                return;
            };
            self.unindex(&mut s, k, &old);
            old
        };
        self.notify(Some(&old), None);
    }

    /// Replaces the whole content after a (re)list, reporting the differences.
    fn replace(&self, fresh: HashMap<Key, Arc<K>>) {
        let gone: Vec<Key> = {
            let s = self.inner.state.read().unwrap();
            s.objects
                .keys()
                .filter(|k| !fresh.contains_key(*k))
                .cloned()
                .collect()
        };
        for k in gone {
            self.delete(&k);
        }
        for (_, obj) in fresh {
            self.apply(obj);
        }
    }

    fn index(&self, s: &mut State<K>, k: &str, obj: &K) {
        for (name, f) in &self.inner.index_fns {
            let idx = s.indexes.entry(name).or_default();
            for v in f(obj) {
                idx.entry(v).or_default().insert(k.to_string());
            }
        }
    }

    fn unindex(&self, s: &mut State<K>, k: &str, obj: &K) {
        for (name, f) in &self.inner.index_fns {
            if let Some(idx) = s.indexes.get_mut(name) {
                for v in f(obj) {
                    if let Some(set) = idx.get_mut(&v) {
                        set.remove(k);
                        if set.is_empty() {
                            idx.remove(&v);
                        }
                    }
                }
            }
        }
    }

    fn notify(&self, old: Option<&Arc<K>>, new: Option<&Arc<K>>) {
        for h in self.inner.handlers.read().unwrap().iter() {
            h(old, new);
        }
    }
}

/// Drops what no controller reads before caching (kube-controller-manager's informers strip
/// managedFields the same way); it is most of a small object's size.
fn trim<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

fn same_version<K: Resource>(a: &K, b: &K) -> bool {
    let (ra, rb) = (a.resource_version(), b.resource_version());
    ra.is_some() && ra == rb && a.meta().uid == b.meta().uid
}

fn type_name<K>() -> &'static str {
    std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .unwrap_or("object")
}

/// Index values for labels: `namespace/key=value` per label.
pub fn label_index_values(
    ns: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let ns = ns.unwrap_or_default();
    labels
        .iter()
        .map(|(k, v)| format!("{ns}/{k}={v}"))
        .collect()
}

/// The index value under which [`label_index_values`] files `key=value` in `ns`.
pub fn label_index_value(ns: &str, key: &str, value: &str) -> String {
    format!("{ns}/{key}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use std::sync::Mutex;

    fn pod(ns: &str, name: &str, rv: &str, app: &str) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.resource_version = Some(rv.into());
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        Arc::new(p)
    }

    #[test]
    fn indexes_follow_updates_and_handlers_see_old_and_new() {
        let inf: Informer<Pod> = Informer::builder()
            .index("label", |p: &Pod| {
                label_index_values(p.metadata.namespace.as_deref(), p.labels())
            })
            .build();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        inf.on_change(move |old, new| {
            s.lock().unwrap().push((
                old.map(|p| p.labels()["app"].clone()),
                new.map(|p| p.labels()["app"].clone()),
            ))
        });
        inf.apply(pod("dev", "a", "1", "web"));
        assert_eq!(inf.by_index("label", "dev/app=web").len(), 1);
        // Same resourceVersion: no change reported.
        inf.apply(pod("dev", "a", "1", "web"));
        inf.apply(pod("dev", "a", "2", "db"));
        assert!(inf.by_index("label", "dev/app=web").is_empty());
        assert_eq!(inf.index_count("label", "dev/app=db"), 1);
        inf.delete("dev/a");
        assert!(inf.is_empty());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (None, Some("web".to_string())),
                (Some("web".to_string()), Some("db".to_string())),
                (Some("db".to_string()), None),
            ]
        );
    }

    #[test]
    fn relist_reports_vanished_objects() {
        let inf: Informer<Pod> = Informer::builder().build();
        inf.apply(pod("dev", "a", "1", "web"));
        inf.apply(pod("dev", "b", "1", "web"));
        let mut fresh = HashMap::new();
        fresh.insert("dev/b".to_string(), pod("dev", "b", "3", "web"));
        inf.replace(fresh);
        assert!(inf.get("dev/a").is_none());
        assert_eq!(
            inf.get("dev/b")
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("3")
        );
        assert_eq!(split_key("dev/b"), ("dev", "b"));
        assert_eq!(split_key("node-1"), ("", "node-1"));
    }
}
