//! What the error channel carries at the end of an exec/attach session.
//!
//! Protocol v4 and later send a JSON `metav1.Status` (as Go marshals it: no kind/apiVersion,
//! `metadata` always present, empty fields left out); v1–v3 send the failure message as
//! plain text and nothing on success (kubelet's `v1WriteStatusFunc`).

use super::session::Outcome;
use crate::runtime_api::RuntimeError;
use serde_json::{json, Value};

/// Which operation a session serves (they report failures differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Exec,
    Attach,
}

/// The final status of a session.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FinalStatus {
    json: Value,
}

impl FinalStatus {
    pub fn success() -> Self {
        FinalStatus {
            json: json!({"metadata": {}, "status": "Success"}),
        }
    }

    /// kubelet's report of a command that exited non-zero; kubectl turns it into
    /// `command terminated with exit code N` and exits N.
    pub fn non_zero_exit(command: &[String], code: i32) -> Self {
        FinalStatus {
            json: json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            }),
        }
    }

    /// apimachinery's `NewInternalError`.
    pub fn internal(message: &str) -> Self {
        FinalStatus {
            json: json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            }),
        }
    }

    /// The status for a finished session, or None when the client is gone.
    pub fn for_outcome(op: Operation, command: &[String], outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::ClientGone => None,
            // kubelet reports an attach that ended with the container as a success: kubectl
            // takes the exit code from the pod's status instead.
            Outcome::Exited(_) if op == Operation::Attach => Some(Self::success()),
            Outcome::Exited(s) if s.code == 0 => Some(Self::success()),
            Outcome::Exited(s) => Some(Self::non_zero_exit(command, s.code)),
            Outcome::Failed(e) => Some(Self::internal(&match op {
                Operation::Exec => format!("error executing command in container: {}", msg(e)),
                Operation::Attach => format!("error attaching to container: {}", msg(e)),
            })),
        }
    }

    /// The v4+ wire form.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json).expect("JSON values serialise")
    }

    /// The v1–v3 wire form: the message of a failure, nothing for success.
    pub fn to_legacy_text(&self) -> Option<Vec<u8>> {
        if self.json["status"] == "Success" {
            return None;
        }
        Some(
            self.json["message"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        )
    }

    /// The bytes for the negotiated protocol version.
    pub fn encode(&self, json_status: bool) -> Option<Vec<u8>> {
        if json_status {
            Some(self.to_json_bytes())
        } else {
            self.to_legacy_text()
        }
    }
}

fn msg(e: &RuntimeError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::ExitStatus;

    fn cmd(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn success_is_exactly_what_kubelet_sends() {
        let s = FinalStatus::for_outcome(
            Operation::Exec,
            &cmd(&["true"]),
            &Outcome::Exited(ExitStatus { code: 0 }),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(s.to_json_bytes()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(s.to_legacy_text(), None);
    }

    #[test]
    fn non_zero_exit_carries_the_code_as_a_cause() {
        let s = FinalStatus::for_outcome(
            Operation::Exec,
            &cmd(&["sh", "-c", "exit 3"]),
            &Outcome::Exited(ExitStatus { code: 3 }),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(s.to_json_bytes()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            String::from_utf8(s.to_legacy_text().unwrap()).unwrap(),
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn attach_ends_in_success_whatever_the_exit_code() {
        let s = FinalStatus::for_outcome(
            Operation::Attach,
            &[],
            &Outcome::Exited(ExitStatus { code: 7 }),
        )
        .unwrap();
        assert_eq!(s, FinalStatus::success());
    }

    #[test]
    fn runtime_failure_is_an_internal_error() {
        let s = FinalStatus::for_outcome(
            Operation::Exec,
            &cmd(&["x"]),
            &Outcome::Failed(RuntimeError::Internal("boom".into())),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(s.to_json_bytes()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: boom","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: boom"}]},"code":500}"#
        );
        assert!(FinalStatus::for_outcome(Operation::Exec, &[], &Outcome::ClientGone).is_none());
    }
}
