//! Request routing and query parameters of the agent's streaming endpoints.
//!
//! Paths are kubelet's: `/containerLogs/{ns}/{pod}/{container}`, `/exec/{ns}/{pod}/{container}`
//! and `/attach/{ns}/{pod}/{container}`. The container segment may be left out (then the
//! `container` query parameter, or the pod's only container, is used). Query parameters are
//! those of `PodLogOptions` / `PodExecOptions` / `PodAttachOptions` as kubectl sends them
//! (booleans as `true`/`false`; kube-apiserver forwards `1` for true, accepted too).

use crate::runtime_api::{ExecOptions, LogOptions};
use kubeport_core::status::Status;

/// Which endpoint a request is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Logs,
    Exec,
    Attach,
}

/// A routed request: endpoint and the pod/container it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub endpoint: Endpoint,
    pub namespace: String,
    pub pod: String,
    /// Empty when neither the path nor the query names one.
    pub container: String,
}

/// Query parameters, in order, decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it; absent is false.
    pub fn flag(&self, key: &str) -> Result<bool, Status> {
        match self.get(key) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(Status::bad_request(format!(
                "invalid value {v:?} for query parameter {key:?}: must be true or false"
            ))),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, Status> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                Status::bad_request(format!(
                    "invalid value {v:?} for query parameter {key:?}: must be an integer"
                ))
            }),
        }
    }
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Routes a path; None for paths the agent does not serve.
pub(crate) fn route(path: &str, query: &Query) -> Option<Target> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let endpoint = match *segs.first()? {
        "containerLogs" => Endpoint::Logs,
        "exec" => Endpoint::Exec,
        "attach" => Endpoint::Attach,
        _ => return None,
    };
    let (namespace, pod, container) = match segs.len() {
        3 => (segs[1], segs[2], None),
        4 if !segs[3].is_empty() => (segs[1], segs[2], Some(segs[3])),
        4 => (segs[1], segs[2], None),
        _ => return None,
    };
    if namespace.is_empty() || pod.is_empty() {
        return None;
    }
    let container = container
        .map(decode_segment)
        .or_else(|| query.get("container").map(str::to_string))
        .unwrap_or_default();
    Some(Target {
        endpoint,
        namespace: decode_segment(namespace),
        pod: decode_segment(pod),
        container,
    })
}

/// `PodLogOptions` from the query, checked as kube-apiserver's validation does.
pub(crate) fn log_options(q: &Query) -> Result<LogOptions, Status> {
    let tail_lines = q.int("tailLines")?;
    let since_seconds = q.int("sinceSeconds")?;
    let limit_bytes = q.int("limitBytes")?;
    if let Some(n) = tail_lines {
        if n < 0 {
            return Err(Status::bad_request(format!(
                "tailLines: Invalid value: {n}: must be greater than or equal to 0"
            )));
        }
    }
    if let Some(n) = limit_bytes {
        if n < 1 {
            return Err(Status::bad_request(format!(
                "limitBytes: Invalid value: {n}: must be greater than 0"
            )));
        }
    }
    if let Some(n) = since_seconds {
        if n < 1 {
            return Err(Status::bad_request(format!(
                "sinceSeconds: Invalid value: {n}: must be greater than 0"
            )));
        }
    }
    let since_time = match q.get("sinceTime").filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => {
            if since_seconds.is_some() {
                return Err(Status::bad_request(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified",
                ));
            }
            let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|_| {
                Status::bad_request(format!(
                    "invalid value {t:?} for query parameter \"sinceTime\": must be an RFC 3339 time"
                ))
            })?;
            // The runtime takes a relative window; a time in the future selects nothing
            // newer than now, which a one-second window approximates.
            let ago = chrono::Utc::now().signed_duration_since(at).num_seconds();
            Some(ago.max(1))
        }
    };
    Ok(LogOptions {
        follow: q.flag("follow")?,
        tail_lines,
        since_seconds: since_seconds.or(since_time),
        timestamps: q.flag("timestamps")?,
        previous: q.flag("previous")?,
        limit_bytes,
    })
}

/// Exec/attach streams from the query. A tty has no separate stderr (kubelet drops it).
pub(crate) fn exec_options(q: &Query) -> Result<ExecOptions, Status> {
    let tty = q.flag("tty")?;
    let stdin = q.flag("stdin")?;
    let stdout = q.flag("stdout")?;
    let stderr = q.flag("stderr")? && !tty;
    if !stdin && !stdout && !stderr {
        return Err(Status::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(ExecOptions {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_kubelet_paths() {
        let q = Query::parse(Some("container=web&follow=true"));
        assert_eq!(
            route("/containerLogs/default/p/c", &q),
            Some(Target {
                endpoint: Endpoint::Logs,
                namespace: "default".into(),
                pod: "p".into(),
                container: "c".into()
            })
        );
        assert_eq!(route("/exec/dev/p", &q).unwrap().container, "web");
        assert_eq!(
            route("/attach/dev/p/", &Query::parse(None))
                .unwrap()
                .container,
            ""
        );
        assert_eq!(route("/attach/dev/p%2Dx/c", &q).unwrap().pod, "p-x");
        assert!(route("/portForward/dev/p", &q).is_none());
        assert!(route("/exec/dev", &q).is_none());
        assert!(route("/exec/dev/p/c/extra", &q).is_none());
    }

    #[test]
    fn repeated_command_parameters_keep_their_order() {
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo+a%20b%3Bexit+3&stdout=true",
        ));
        assert_eq!(q.all("command"), vec!["sh", "-c", "echo a b;exit 3"]);
    }

    #[test]
    fn exec_flags_accept_true_and_1_and_drop_stderr_with_tty() {
        let o = exec_options(&Query::parse(Some(
            "stdin=1&stdout=true&stderr=true&tty=true",
        )))
        .unwrap();
        assert_eq!(
            o,
            ExecOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        let e = exec_options(&Query::parse(Some("stdout=false"))).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(exec_options(&Query::parse(Some("stdout=maybe"))).is_err());
    }

    #[test]
    fn log_options_parse_and_validate() {
        let o = log_options(&Query::parse(Some(
            "follow=true&tailLines=1&timestamps=true&limitBytes=10&previous=false",
        )))
        .unwrap();
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                tail_lines: Some(1),
                since_seconds: None,
                timestamps: true,
                previous: false,
                limit_bytes: Some(10)
            }
        );
        let e = log_options(&Query::parse(Some("tailLines=-1"))).unwrap_err();
        assert_eq!(
            e.message,
            "tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(log_options(&Query::parse(Some("tailLines=x"))).is_err());
        assert!(log_options(&Query::parse(Some("sinceSeconds=0"))).is_err());
        assert!(log_options(&Query::parse(Some(
            "sinceSeconds=5&sinceTime=2020-01-01T00:00:00Z"
        )))
        .is_err());
        let o = log_options(&Query::parse(Some("sinceTime=2000-01-01T00:00:00Z"))).unwrap();
        assert!(o.since_seconds.unwrap() > 700_000_000);
    }
}
