//! Pure Deployment logic: the pod-template-hash, maxSurge/maxUnavailable arithmetic, which
//! ReplicaSet is new, how far to scale each set, revision annotations, and status with the
//! Available/Progressing conditions. No I/O here.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;

pub const LABEL_POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";
pub const ANNOTATION_REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const ANNOTATION_DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const ANNOTATION_MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub const REASON_RS_UPDATED: &str = "ReplicaSetUpdated";
pub const REASON_FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const REASON_NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const REASON_FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const REASON_NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const REASON_TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const REASON_PAUSED: &str = "DeploymentPaused";
pub const REASON_RESUMED: &str = "DeploymentResumed";
pub const REASON_MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const REASON_MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// 32-bit FNV-1a.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// kube's rand.SafeEncodeString: each character mapped onto an alphabet without vowels or
/// look-alike digits, so generated names never spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.chars()
        .map(|c| ALPHANUMS[(c as usize) % ALPHANUMS.len()] as char)
        .collect()
}

/// The pod-template-hash: FNV-32a over the template (canonical JSON) plus the collision
/// count (little-endian, in 8 bytes as kube writes it), its decimal form safe-encoded;
/// 9-10 characters of `bcdfghjklmnpqrstvwxz2456789`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        let mut cc = [0u8; 8];
        cc[..4].copy_from_slice(&(c as u32).to_le_bytes());
        bytes.extend_from_slice(&cc);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// An int or a percentage of `total` (rounded up or down), kube's GetScaledValueFromIntOrPercent.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> anyhow::Result<i32> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                if let Ok(n) = s.parse::<i32>() {
                    return Ok(n);
                }
                anyhow::bail!(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                );
            };
            let p: f64 = p
                .parse::<i32>()
                .map_err(|_| anyhow::anyhow!("invalid value {s:?}: {s:?}"))?
                .into();
            let v = p * f64::from(total) / 100.0;
            Ok(if round_up { v.ceil() } else { v.floor() } as i32)
        }
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down); both 0 becomes unavailable 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> anyhow::Result<(i32, i32)> {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&default), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    if !is_rolling(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 1))
}

pub fn max_surge(d: &Deployment) -> i32 {
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    fenceposts(d).1
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key)?.parse().ok()
}

/// A ReplicaSet's revision (0 if unannotated or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, ANNOTATION_REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

/// Templates equal apart from the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(LABEL_POD_TEMPLATE_HASH);
                if l.is_empty() {
                    m.labels = None;
                }
            }
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// Index of the ReplicaSet whose template is the Deployment's (oldest first on ties).
pub fn find_new_rs(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let t = template(d);
    let mut idx: Vec<usize> = (0..rss.len()).collect();
    idx.sort_by(|a, b| by_creation(&rss[*a], &rss[*b]));
    idx.into_iter()
        .find(|i| equal_ignore_hash(&rs_template(&rss[*i]), &t))
}

/// Older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ta.cmp(&tb)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Copies the Deployment's annotations (except bookkeeping ones) and sets the revision;
/// new sets also get desired/max replicas. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
) -> bool {
    let skip = [
        LAST_APPLIED,
        ANNOTATION_REVISION,
        ANNOTATION_REVISION_HISTORY,
        ANNOTATION_DESIRED_REPLICAS,
        ANNOTATION_MAX_REPLICAS,
        "deployment.kubernetes.io/error-selector-overlapping-with",
        "deployment.kubernetes.io/selector-updated-at",
    ];
    let mut changed = false;
    let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip.contains(&k.as_str()) || ann.get(k) == Some(v) {
            continue;
        }
        ann.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = ann.get(ANNOTATION_REVISION).cloned();
    let old_n: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    let new_n: i64 = new_revision.parse().unwrap_or(0);
    let mut revision_changed = false;
    if old.is_none() || old_n < new_n {
        ann.insert(ANNOTATION_REVISION.into(), new_revision.into());
        changed = true;
        revision_changed = true;
    }
    if let (Some(old), true) = (old, revision_changed) {
        let history = ann
            .get(ANNOTATION_REVISION_HISTORY)
            .cloned()
            .unwrap_or_default();
        let value = if history.is_empty() {
            old
        } else {
            format!("{history},{old}")
        };
        ann.insert(ANNOTATION_REVISION_HISTORY.into(), value);
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Sets desired-replicas and max-replicas; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(Default::default);
    let mut changed = false;
    for (k, v) in [
        (ANNOTATION_DESIRED_REPLICAS, desired),
        (ANNOTATION_MAX_REPLICAS, max),
    ] {
        if ann.get(k).map(String::as_str) != Some(v.to_string().as_str()) {
            ann.insert(k.into(), v.to_string());
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    int_annotation(rs, ANNOTATION_DESIRED_REPLICAS) != Some(desired)
        || int_annotation(rs, ANNOTATION_MAX_REPLICAS) != Some(max)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, ANNOTATION_DESIRED_REPLICAS)
}

/// The new set owns all desired replicas, believes so, and they are available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let want = replicas(d);
    rs_replicas(rs) == want
        && desired_replicas_annotation(rs) == Some(want)
        && rs_available(rs) == want
}

/// How many replicas the new set should have now (kube's NewRSNewReplicas).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

/// How many old replicas may go now, and the unhealthy-first then oldest-first plan:
/// returns (new replica count per old set index). `olds` are indexes into `all`.
pub fn old_scale_down_plan(
    d: &Deployment,
    all: &[ReplicaSet],
    new_idx: Option<usize>,
    olds: &[usize],
) -> Vec<(usize, i32)> {
    let old_count: i32 = olds.iter().map(|i| rs_replicas(&all[*i])).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all_count: i32 = all.iter().map(rs_replicas).sum();
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new_idx.map_or(0, |i| rs_replicas(&all[i]) - rs_available(&all[i]));
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut sizes: Vec<(usize, i32)> = olds.iter().map(|i| (*i, rs_replicas(&all[*i]))).collect();
    sizes.sort_by(|a, b| by_creation(&all[a.0], &all[b.0]));
    let mut plan: Vec<(usize, i32)> = Vec::new();
    // Unhealthy replicas first: removing them does not lower availability.
    let mut cleaned = 0;
    for (i, size) in sizes.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if *size == 0 {
            continue;
        }
        let unhealthy = *size - rs_available(&all[*i]);
        if unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        *size -= down;
        cleaned += down;
        plan.push((*i, *size));
    }
    // Then available replicas, oldest sets first, keeping minAvailable.
    let available: i32 = all.iter().map(rs_available).sum();
    if available > min_available {
        let total = available - min_available;
        let mut done = 0;
        for (i, size) in sizes.iter_mut() {
            if done >= total {
                break;
            }
            if *size == 0 {
                continue;
            }
            let down = (*size).min(total - done);
            *size -= down;
            done += down;
            plan.retain(|(j, _)| j != i);
            plan.push((*i, *size));
        }
    }
    plan
}

/// The only set with replicas, or the newest when none has any (None: several active).
pub fn find_active_or_latest(
    all: &[ReplicaSet],
    new_idx: Option<usize>,
    olds: &[usize],
) -> Option<usize> {
    let active: Vec<usize> = new_idx
        .into_iter()
        .chain(olds.iter().copied())
        .filter(|i| rs_replicas(&all[*i]) > 0)
        .collect();
    match active.len() {
        0 => new_idx.or_else(|| {
            olds.iter()
                .copied()
                .max_by(|a, b| by_creation(&all[*a], &all[*b]))
        }),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Estimated change for one set during proportional scaling (kube's GetProportion).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -rs_replicas(rs)
    } else {
        let deployment_replicas = replicas(d) + max_surge(d);
        let annotated = int_annotation(rs, ANNOTATION_MAX_REPLICAS)
            .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if annotated == 0 {
            0
        } else {
            let size =
                f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
            size.round() as i32 - rs_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Target sizes when a rolling Deployment is scaled mid-rollout: extra (or fewer)
/// replicas spread over the active sets in proportion to their size, leftovers to the
/// largest. Returns (index, new size, "up"|"down").
pub fn proportional_plan(
    d: &Deployment,
    all: &[ReplicaSet],
    active: &[usize],
) -> Vec<(usize, i32, &'static str)> {
    let total: i32 = active.iter().map(|i| rs_replicas(&all[*i])).sum();
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total;
    let mut order: Vec<usize> = active.to_vec();
    let op = match to_add.cmp(&0) {
        Ordering::Greater => {
            // Larger first; newer first on ties.
            order.sort_by(|a, b| {
                rs_replicas(&all[*b])
                    .cmp(&rs_replicas(&all[*a]))
                    .then_with(|| by_creation(&all[*b], &all[*a]))
            });
            "up"
        }
        Ordering::Less => {
            // Larger first; older first on ties.
            order.sort_by(|a, b| {
                rs_replicas(&all[*b])
                    .cmp(&rs_replicas(&all[*a]))
                    .then_with(|| by_creation(&all[*a], &all[*b]))
            });
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: Vec<(usize, i32)> = Vec::new();
    for i in &order {
        let rs = &all[*i];
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push((*i, rs_replicas(rs) + p));
            added += p;
        } else {
            sizes.push((*i, rs_replicas(rs)));
        }
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
    }
    sizes.into_iter().map(|(i, s)| (i, s, op)).collect()
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Adds or replaces a condition; keeps an existing one with the same status and reason,
/// and keeps lastTransitionTime when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &cond.type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
        if c.is_empty() {
            status.conditions = None;
        }
    }
}

fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// Status counters from the sets, conditions carried over, Available recomputed (kube's
/// calculateStatus). Zero counters are omitted, as the API omits them.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total_spec: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all.iter().map(|r| rs_status_replicas(r)).sum()),
        updated_replicas: nonzero(new_rs.map_or(0, rs_status_replicas)),
        ready_replicas: nonzero(all.iter().map(|r| rs_ready(r)).sum()),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total_spec - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                REASON_MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                REASON_MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// All replicas updated and available enough, and the spec observed.
pub fn deployment_complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let want = replicas(d);
    st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) >= want - max_unavailable(d)
        && st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Progress since the last status: more updated, fewer old, or more available replicas.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    let old_old = z(old.replicas) - z(old.updated_replicas);
    let new_old = z(new.replicas) - z(new.updated_replicas);
    z(new.updated_replicas) > z(old.updated_replicas)
        || new_old < old_old
        || z(new.available_replicas) > z(old.available_replicas)
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Whether the last progress is older than progressDeadlineSeconds.
pub fn deployment_timed_out(d: &Deployment, st: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(st, "Progressing") else {
        return false;
    };
    if c.reason.as_deref() == Some(REASON_TIMED_OUT) {
        return true;
    }
    let from = c.last_update_time.as_ref().map_or(0, |t| t.0.as_second());
    from + i64::from(deadline) < now.as_second()
}

/// The rollout status with the Progressing condition updated (kube's syncRolloutStatus,
/// minus ReplicaFailure which the caller merges).
pub fn rollout_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let mut st = calculate_status(all, new_rs, d, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut st, "Progressing");
    }
    let cur = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, "Progressing"))
        .cloned();
    let complete_before = st.replicas == st.updated_replicas
        && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some(REASON_NEW_RS_AVAILABLE);
    if progress_deadline(d).is_some() && !complete_before {
        let rs_name = new_rs.and_then(|r| r.metadata.name.clone());
        let dname = d.metadata.name.clone().unwrap_or_default();
        if deployment_complete(d, &st) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet \"{n}\" has successfully progressed."),
                None => format!("Deployment \"{dname}\" has successfully progressed."),
            };
            set_condition(
                &mut st,
                new_condition("Progressing", "True", REASON_NEW_RS_AVAILABLE, msg, now),
            );
        } else if deployment_progressing(d, &st) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                None => format!("Deployment \"{dname}\" is progressing."),
            };
            let mut c = new_condition("Progressing", "True", REASON_RS_UPDATED, msg, now);
            if let Some(cur) = &cur {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut st, "Progressing");
            }
            set_condition(&mut st, c);
        } else if deployment_timed_out(d, &st, now) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                None => format!("Deployment \"{dname}\" has timed out progressing."),
            };
            set_condition(
                &mut st,
                new_condition("Progressing", "False", REASON_TIMED_OUT, msg, now),
            );
        }
    }
    st
}

/// When to look again for a progress timeout (kube's requeueStuckDeployment).
pub fn requeue_after(
    d: &Deployment,
    st: &DeploymentStatus,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let deadline = progress_deadline(d)?;
    let cur = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, "Progressing"))?;
    if deployment_complete(d, st) || cur.reason.as_deref() == Some(REASON_TIMED_OUT) {
        return None;
    }
    let last = cur.last_update_time.as_ref().map_or(0, |t| t.0.as_second());
    let after = last + i64::from(deadline) - now.as_second();
    Some(std::time::Duration::from_secs((after.max(0) + 1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deploy(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                progress_deadline_seconds: Some(600),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::String(surge.into())),
                        max_unavailable: Some(IntOrString::String(unavailable.into())),
                    }),
                }),
                template: tmpl("nginx:1.26"),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn tmpl(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "nginx".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn rs(name: &str, created: i64, replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                template: Some(tmpl(name)),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn hash_has_kubes_shape_and_depends_on_template_and_collisions() {
        let a = compute_hash(&tmpl("nginx:1.26"), None);
        assert!((9..=10).contains(&a.len()), "{a}");
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(a, compute_hash(&tmpl("nginx:1.26"), None));
        assert_ne!(a, compute_hash(&tmpl("nginx:1.27"), None));
        assert_ne!(a, compute_hash(&tmpl("nginx:1.26"), Some(1)));
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        assert_eq!(
            resolve_fenceposts(
                Some(&IntOrString::String("25%".into())),
                Some(&IntOrString::String("25%".into())),
                3
            )
            .unwrap(),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(
                Some(&IntOrString::String("25%".into())),
                Some(&IntOrString::String("25%".into())),
                10
            )
            .unwrap(),
            (3, 2)
        );
        // Both zero: one may be unavailable.
        assert_eq!(
            resolve_fenceposts(
                Some(&IntOrString::Int(0)),
                Some(&IntOrString::String("1%".into())),
                2
            )
            .unwrap(),
            (0, 1)
        );
        assert_eq!(resolve_fenceposts(None, None, 4).unwrap(), (1, 1));
        assert!(scaled_value(&IntOrString::String("x%".into()), 3, true).is_err());
    }

    #[test]
    fn rolling_update_surges_then_scales_old_down() {
        let d = deploy(3, "25%", "25%"); // surge 1, unavailable 0
        let old = rs("web-old", 1, 3, 3);
        let new = rs("web-new", 2, 0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
        // New at 1 but not available: nothing old may go (minAvailable 3).
        let all = vec![rs("web-old", 1, 3, 3), rs("web-new", 2, 1, 0)];
        assert!(old_scale_down_plan(&d, &all, Some(1), &[0]).is_empty());
        // New pod available: one old may go.
        let all = vec![rs("web-old", 1, 3, 3), rs("web-new", 2, 1, 1)];
        assert_eq!(old_scale_down_plan(&d, &all, Some(1), &[0]), vec![(0, 2)]);
        // Old unhealthy replicas go first, even below minimum availability.
        let d = deploy(3, "1", "1");
        let all = vec![rs("web-old", 1, 3, 1), rs("web-new", 2, 1, 0)];
        assert_eq!(old_scale_down_plan(&d, &all, Some(1), &[0]), vec![(0, 2)]);
    }

    #[test]
    fn proportional_scaling_spreads_new_replicas() {
        let mut d = deploy(20, "3", "2");
        let mut a = rs("a", 1, 8, 8);
        let mut b = rs("b", 2, 5, 5);
        for r in [&mut a, &mut b] {
            set_replicas_annotations(r, 10, 13);
        }
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..Default::default()
        });
        let plan = proportional_plan(&d, &[a, b], &[0, 1]);
        // allowed 23, total 13: +10 split 8:5 -> a 8*23/13=14 (+6), b 5*23/13=9 (+4).
        assert_eq!(plan, vec![(0, 14, "up"), (1, 9, "up")]);
    }

    #[test]
    fn status_and_progressing_conditions_follow_kube() {
        let now = Timestamp::from_second(1_000).unwrap();
        let d = deploy(3, "25%", "25%");
        let new = rs("web-abc", 2, 3, 3);
        let st = rollout_status(&[&new], Some(&new), &d, now);
        assert_eq!(st.replicas, Some(3));
        assert_eq!(st.updated_replicas, Some(3));
        assert_eq!(st.available_replicas, Some(3));
        assert_eq!(st.unavailable_replicas, None);
        assert_eq!(st.observed_generation, Some(2));
        let avail = get_condition(&st, "Available").unwrap();
        assert_eq!(
            (avail.status.as_str(), avail.reason.as_deref()),
            ("True", Some("MinimumReplicasAvailable"))
        );
        assert_eq!(
            avail.message.as_deref(),
            Some("Deployment has minimum availability.")
        );
        let prog = get_condition(&st, "Progressing").unwrap();
        assert_eq!(prog.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(
            prog.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );

        let mid = rs("web-abc", 2, 3, 1);
        let st = rollout_status(&[&mid], Some(&mid), &d, now);
        assert_eq!(st.unavailable_replicas, Some(2));
        let p = get_condition(&st, "Progressing").unwrap();
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-abc\" is progressing.")
        );
        let a = get_condition(&st, "Available").unwrap();
        assert_eq!(a.reason.as_deref(), Some("MinimumReplicasUnavailable"));
    }

    #[test]
    fn new_replica_set_is_found_by_template_ignoring_the_hash_label() {
        let d = deploy(3, "25%", "25%");
        let mut same = rs("web-x", 5, 1, 1);
        let mut t = template(&d);
        t.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_POD_TEMPLATE_HASH.into(), "abc".into());
        same.spec.as_mut().unwrap().template = Some(t);
        let other = rs("web-y", 1, 1, 1);
        assert_eq!(find_new_rs(&d, &[other, same]), Some(1));
    }

    #[test]
    fn revision_annotations() {
        let mut d = deploy(3, "25%", "25%");
        d.metadata.annotations = Some(
            [
                ("team".to_string(), "a".to_string()),
                (LAST_APPLIED.to_string(), "{}".to_string()),
            ]
            .into(),
        );
        let mut r = rs("web-a", 1, 0, 0);
        assert!(set_new_rs_annotations(&d, &mut r, "1", false));
        let ann = r.metadata.annotations.clone().unwrap();
        assert_eq!(ann[ANNOTATION_REVISION], "1");
        assert_eq!(ann["team"], "a");
        assert!(!ann.contains_key(LAST_APPLIED));
        assert_eq!(ann[ANNOTATION_DESIRED_REPLICAS], "3");
        assert_eq!(ann[ANNOTATION_MAX_REPLICAS], "4");
        assert!(!set_new_rs_annotations(&d, &mut r, "1", true));
        // Rolling back to it records the old revision in the history.
        assert!(set_new_rs_annotations(&d, &mut r, "3", true));
        assert_eq!(
            r.metadata.annotations.unwrap()[ANNOTATION_REVISION_HISTORY],
            "1"
        );
    }
}
