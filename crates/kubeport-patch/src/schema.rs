//! Merge metadata of the built-in types kubeport serves.
//!
//! Only fields that differ from the defaults are listed. Defaults: an object is a granular
//! struct/map (strategic merge patch merges it, server-side apply tracks its fields one by
//! one); a list is replaced by strategic merge patch and atomic for server-side apply. The
//! entries come from the `patchStrategy`/`patchMergeKey` tags and the `+listType`,
//! `+listMapKey`, `+mapType`/`+structType=atomic` markers of k8s.io/api core/v1, apps/v1 and
//! meta/v1.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// No special metadata: objects are granular, lists replace (SMP) / are atomic (SSA).
    Untyped,
    /// A struct with some fields carrying metadata.
    Struct(&'static [Field]),
    /// A map or struct that server-side apply owns as one leaf (`+mapType=atomic`,
    /// `+structType=atomic`). Strategic merge patch still merges it key by key.
    Atomic,
    List(&'static ListDef),
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub shape: Shape,
}

#[derive(Debug)]
pub(crate) struct ListDef {
    pub item: Shape,
    pub smp: ListSmp,
    pub ssa: ListSsa,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum ListSmp {
    /// No patch strategy: the patch's list replaces the live one.
    Replace,
    /// `patchStrategy:"merge"`, with the merge key for lists of objects.
    Merge(Option<&'static str>),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum ListSsa {
    /// `+listType=set`: items are identified by value.
    Set,
    /// `+listType=map` with its `+listMapKey`s.
    Map(&'static [MapKey]),
}

#[derive(Debug)]
pub(crate) struct MapKey {
    pub name: &'static str,
    /// The schema default server-side apply uses when an item omits the key.
    pub default: Option<&'static str>,
}

impl Shape {
    /// The shape of field/key `name` of an object of this shape.
    pub(crate) fn child(self, name: &str) -> Shape {
        match self {
            Shape::Struct(fields) => fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.shape)
                .unwrap_or(Shape::Untyped),
            _ => Shape::Untyped,
        }
    }

    /// Strategic merge patch strategy of a list-valued field of this shape.
    pub(crate) fn smp_list(self) -> (ListSmp, Shape) {
        match self {
            Shape::List(def) => (def.smp, def.item),
            _ => (ListSmp::Replace, Shape::Untyped),
        }
    }

    pub(crate) fn is_atomic(self) -> bool {
        matches!(self, Shape::Atomic)
    }
}

const fn f(name: &'static str, shape: Shape) -> Field {
    Field { name, shape }
}

const fn key(name: &'static str) -> MapKey {
    MapKey {
        name,
        default: None,
    }
}

const TCP_PROTOCOL: MapKey = MapKey {
    name: "protocol",
    default: Some("TCP"),
};

static BY_TYPE: [MapKey; 1] = [key("type")];
static BY_NAME: [MapKey; 1] = [key("name")];
static BY_IP: [MapKey; 1] = [key("ip")];

/// `conditions` lists: merged by `type` everywhere.
static CONDITIONS: ListDef = ListDef {
    item: Shape::Untyped,
    smp: ListSmp::Merge(Some("type")),
    ssa: ListSsa::Map(&BY_TYPE),
};

// --- meta/v1 ObjectMeta ---------------------------------------------------------------------

static OWNER_REFERENCE_KEYS: [MapKey; 1] = [key("uid")];
static OBJECT_META: [Field; 2] = [
    f(
        "finalizers",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(None),
            ssa: ListSsa::Set,
        }),
    ),
    f(
        "ownerReferences",
        Shape::List(&ListDef {
            item: Shape::Atomic,
            smp: ListSmp::Merge(Some("uid")),
            ssa: ListSsa::Map(&OWNER_REFERENCE_KEYS),
        }),
    ),
];
pub(crate) const OBJECT_META_SHAPE: Shape = Shape::Struct(&OBJECT_META);

// --- core/v1 Service -----------------------------------------------------------------------

static SERVICE_PORT_KEYS: [MapKey; 2] = [key("port"), TCP_PROTOCOL];
static SERVICE_SPEC: [Field; 2] = [
    f(
        "ports",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("port")),
            ssa: ListSsa::Map(&SERVICE_PORT_KEYS),
        }),
    ),
    f("selector", Shape::Atomic),
];
static SERVICE_STATUS: [Field; 1] = [f("conditions", Shape::List(&CONDITIONS))];
static SERVICE: [Field; 3] = [
    f("metadata", OBJECT_META_SHAPE),
    f("spec", Shape::Struct(&SERVICE_SPEC)),
    f("status", Shape::Struct(&SERVICE_STATUS)),
];

// --- core/v1 Pod ---------------------------------------------------------------------------

static CONTAINER_PORT_KEYS: [MapKey; 2] = [key("containerPort"), TCP_PROTOCOL];
static MOUNT_PATH: [MapKey; 1] = [key("mountPath")];
static DEVICE_PATH: [MapKey; 1] = [key("devicePath")];
static ENV_VAR_SOURCE: [Field; 4] = [
    f("configMapKeyRef", Shape::Atomic),
    f("secretKeyRef", Shape::Atomic),
    f("fieldRef", Shape::Atomic),
    f("resourceFieldRef", Shape::Atomic),
];
static ENV_VAR: [Field; 1] = [f("valueFrom", Shape::Struct(&ENV_VAR_SOURCE))];
static CONTAINER: [Field; 4] = [
    f(
        "ports",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("containerPort")),
            ssa: ListSsa::Map(&CONTAINER_PORT_KEYS),
        }),
    ),
    f(
        "env",
        Shape::List(&ListDef {
            item: Shape::Struct(&ENV_VAR),
            smp: ListSmp::Merge(Some("name")),
            ssa: ListSsa::Map(&BY_NAME),
        }),
    ),
    f(
        "volumeMounts",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("mountPath")),
            ssa: ListSsa::Map(&MOUNT_PATH),
        }),
    ),
    f(
        "volumeDevices",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("devicePath")),
            ssa: ListSsa::Map(&DEVICE_PATH),
        }),
    ),
];
static CONTAINERS: ListDef = ListDef {
    item: Shape::Struct(&CONTAINER),
    smp: ListSmp::Merge(Some("name")),
    ssa: ListSsa::Map(&BY_NAME),
};
static BY_NAME_LIST: ListDef = ListDef {
    item: Shape::Untyped,
    smp: ListSmp::Merge(Some("name")),
    ssa: ListSsa::Map(&BY_NAME),
};
static TOPOLOGY_SPREAD_KEYS: [MapKey; 2] = [key("topologyKey"), key("whenUnsatisfiable")];
static TOPOLOGY_SPREAD_CONSTRAINT: [Field; 1] = [f("labelSelector", Shape::Atomic)];
static NODE_AFFINITY: [Field; 1] = [f(
    "requiredDuringSchedulingIgnoredDuringExecution",
    Shape::Atomic,
)];
static AFFINITY: [Field; 1] = [f("nodeAffinity", Shape::Struct(&NODE_AFFINITY))];
static POD_SPEC: [Field; 11] = [
    f("volumes", Shape::List(&BY_NAME_LIST)),
    f("initContainers", Shape::List(&CONTAINERS)),
    f("containers", Shape::List(&CONTAINERS)),
    f("ephemeralContainers", Shape::List(&CONTAINERS)),
    f(
        "imagePullSecrets",
        Shape::List(&ListDef {
            item: Shape::Atomic,
            smp: ListSmp::Merge(Some("name")),
            ssa: ListSsa::Map(&BY_NAME),
        }),
    ),
    f(
        "hostAliases",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("ip")),
            ssa: ListSsa::Map(&BY_IP),
        }),
    ),
    f(
        "topologySpreadConstraints",
        Shape::List(&ListDef {
            item: Shape::Struct(&TOPOLOGY_SPREAD_CONSTRAINT),
            smp: ListSmp::Merge(Some("topologyKey")),
            ssa: ListSsa::Map(&TOPOLOGY_SPREAD_KEYS),
        }),
    ),
    f("schedulingGates", Shape::List(&BY_NAME_LIST)),
    f("resourceClaims", Shape::List(&BY_NAME_LIST)),
    f("nodeSelector", Shape::Atomic),
    f("affinity", Shape::Struct(&AFFINITY)),
];
const POD_SPEC_SHAPE: Shape = Shape::Struct(&POD_SPEC);
static BY_IP_LIST: ListDef = ListDef {
    item: Shape::Untyped,
    smp: ListSmp::Merge(Some("ip")),
    ssa: ListSsa::Map(&BY_IP),
};
static POD_STATUS: [Field; 4] = [
    f("conditions", Shape::List(&CONDITIONS)),
    f("podIPs", Shape::List(&BY_IP_LIST)),
    f("hostIPs", Shape::List(&BY_IP_LIST)),
    f("resourceClaimStatuses", Shape::List(&BY_NAME_LIST)),
];
static POD: [Field; 3] = [
    f("metadata", OBJECT_META_SHAPE),
    f("spec", POD_SPEC_SHAPE),
    f("status", Shape::Struct(&POD_STATUS)),
];

// --- apps/v1 Deployment, ReplicaSet ----------------------------------------------------------

static POD_TEMPLATE_SPEC: [Field; 2] =
    [f("metadata", OBJECT_META_SHAPE), f("spec", POD_SPEC_SHAPE)];
static WORKLOAD_SPEC: [Field; 2] = [
    f("selector", Shape::Atomic),
    f("template", Shape::Struct(&POD_TEMPLATE_SPEC)),
];
static WORKLOAD_STATUS: [Field; 1] = [f("conditions", Shape::List(&CONDITIONS))];
static WORKLOAD: [Field; 3] = [
    f("metadata", OBJECT_META_SHAPE),
    f("spec", Shape::Struct(&WORKLOAD_SPEC)),
    f("status", Shape::Struct(&WORKLOAD_STATUS)),
];

// --- core/v1 Node, Namespace -----------------------------------------------------------------

static NODE_SPEC: [Field; 1] = [f(
    "podCIDRs",
    Shape::List(&ListDef {
        item: Shape::Untyped,
        smp: ListSmp::Merge(None),
        ssa: ListSsa::Set,
    }),
)];
static NODE_STATUS: [Field; 2] = [
    f("conditions", Shape::List(&CONDITIONS)),
    f(
        "addresses",
        Shape::List(&ListDef {
            item: Shape::Untyped,
            smp: ListSmp::Merge(Some("type")),
            ssa: ListSsa::Map(&BY_TYPE),
        }),
    ),
];
static NODE: [Field; 3] = [
    f("metadata", OBJECT_META_SHAPE),
    f("spec", Shape::Struct(&NODE_SPEC)),
    f("status", Shape::Struct(&NODE_STATUS)),
];
static NAMESPACE_STATUS: [Field; 1] = [f("conditions", Shape::List(&CONDITIONS))];
static NAMESPACE: [Field; 2] = [
    f("metadata", OBJECT_META_SHAPE),
    f("status", Shape::Struct(&NAMESPACE_STATUS)),
];

// --- core/v1 ServiceAccount; kinds whose only metadata is ObjectMeta ---------------------------

static SERVICE_ACCOUNT: [Field; 2] = [
    f("metadata", OBJECT_META_SHAPE),
    f(
        "secrets",
        Shape::List(&ListDef {
            item: Shape::Atomic,
            smp: ListSmp::Merge(Some("name")),
            ssa: ListSsa::Map(&BY_NAME),
        }),
    ),
];
static META_ONLY: [Field; 1] = [f("metadata", OBJECT_META_SHAPE)];

/// The shape of a whole object of `(group, kind)`.
pub(crate) fn kind_shape(group: &str, kind: &str) -> Shape {
    match (group, kind) {
        ("", "Service") => Shape::Struct(&SERVICE),
        ("", "Pod") => Shape::Struct(&POD),
        ("apps", "Deployment") | ("apps", "ReplicaSet") => Shape::Struct(&WORKLOAD),
        ("", "Node") => Shape::Struct(&NODE),
        ("", "Namespace") => Shape::Struct(&NAMESPACE),
        ("", "ServiceAccount") => Shape::Struct(&SERVICE_ACCOUNT),
        // Endpoints (subsets atomic), EndpointSlice (endpoints/ports atomic), ConfigMap, Secret
        // and unknown kinds: nothing beyond ObjectMeta.
        _ => Shape::Struct(&META_ONLY),
    }
}

/// Kinds whose `status` is written only through the status subresource: writes to the main
/// resource neither change nor own it.
pub(crate) fn has_status_subresource(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Service")
            | ("", "Pod")
            | ("", "Node")
            | ("", "Namespace")
            | ("apps", "Deployment")
            | ("apps", "ReplicaSet")
    )
}

/// The object a create starts from: kube-apiserver compares the new object with the typed
/// zero value, whose non-pointer structs are `{}` and whose non-omitempty slices are `null`.
/// This decides which fields a creating manager owns as `.` (added containers) in `FieldsV1`.
pub(crate) fn zero_object(group: &str, kind: &str) -> Value {
    let meta = json!({"creationTimestamp": null});
    match (group, kind) {
        ("", "Service") => json!({"metadata": meta, "spec": {}, "status": {"loadBalancer": {}}}),
        ("", "Pod") => json!({"metadata": meta, "spec": {"containers": null}, "status": {}}),
        ("apps", "Deployment") => json!({
            "metadata": meta,
            "spec": {"selector": null, "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}, "strategy": {}},
            "status": {}
        }),
        ("apps", "ReplicaSet") => json!({
            "metadata": meta,
            "spec": {"selector": null, "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}},
            "status": {"replicas": 0}
        }),
        ("", "Node") => {
            json!({"metadata": meta, "spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}, "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "",
            "kubeletVersion": "", "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""}}})
        }
        ("", "Namespace") => json!({"metadata": meta, "spec": {}, "status": {}}),
        ("discovery.k8s.io", "EndpointSlice") => {
            json!({"metadata": meta, "addressType": "", "endpoints": null, "ports": null})
        }
        ("", "Endpoints") | ("", "ConfigMap") | ("", "Secret") | ("", "ServiceAccount") => {
            json!({"metadata": meta})
        }
        // Unknown kinds are unstructured: they start empty.
        _ => json!({}),
    }
}
