//! Checks every reply and event body a test receives against the committed JSON Schema of
//! its type (`shared/contracts/schemas`), so that every service's tests check the published
//! contract as a side effect.
//!
//! The committed files, not `contracts::schema::all()`, are the reference: they are what
//! other systems were given. The contracts crate's drift test keeps them equal to the Rust
//! types; this check keeps the services' actual output equal to them, which catches a reply
//! built with `json!` or from a struct the schema does not describe.
//!
//! Names are the schema files' stems: `reply`, `<service>.<command>.result` for a command's
//! `ok` result, and an event's `type` property (`<service>.<event>.v<N>`). A body whose type
//! has no committed schema fails too, so a new message type cannot skip getting one.

use contracts::{Reply, ReplyStatus};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the committed schemas live in this repository.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contracts/schemas")
}

/// Why a body does not satisfy its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// No committed schema has this name.
    NoSchema { schema: String, path: PathBuf },
    /// The schema file exists but cannot be read or compiled.
    BadSchema { schema: String, why: String },
    /// The body does not validate; one entry per error, with the instance path.
    Invalid { schema: String, errors: Vec<String> },
}

impl Violation {
    pub fn schema(&self) -> &str {
        match self {
            Violation::NoSchema { schema, .. }
            | Violation::BadSchema { schema, .. }
            | Violation::Invalid { schema, .. } => schema,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NoSchema { schema, path } => write!(
                f,
                "no committed schema '{schema}' ({} does not exist): give the type a schema in \
                 shared/contracts/src/schema.rs and regenerate",
                path.display()
            ),
            Violation::BadSchema { schema, why } => write!(f, "schema '{schema}' is unusable: {why}"),
            Violation::Invalid { schema, errors } => {
                write!(f, "body does not match schema '{schema}':")?;
                for e in errors {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

type Compiled = Result<Arc<jsonschema::Validator>, Violation>;

/// Compiled validators by schema name, each built once per test binary.
fn validator(schema: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().expect("schema cache").get(schema) {
        return found.clone();
    }
    let compiled = compile(schema);
    cache
        .lock()
        .expect("schema cache")
        .insert(schema.to_owned(), compiled.clone());
    compiled
}

fn compile(schema: &str) -> Compiled {
    // A name is a file stem: no path separators can smuggle in another file.
    let path = schema_dir().join(format!("{schema}.json"));
    if schema.contains(['/', '\\']) || schema.is_empty() || !path.is_file() {
        return Err(Violation::NoSchema {
            schema: schema.to_owned(),
            path,
        });
    }
    let bad = |why: String| Violation::BadSchema {
        schema: schema.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    jsonschema::draft202012::options()
        // Dates, times and UUIDs are part of the contract, not just annotations.
        .should_validate_formats(true)
        .build(&value)
        .map(Arc::new)
        .map_err(|e| bad(e.to_string()))
}

/// Validates `body` against the committed schema `schema` (a file stem).
pub fn check(schema: &str, body: &serde_json::Value) -> Result<(), Violation> {
    let v = validator(schema)?;
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "(root)".to_owned() } else { at };
            format!("at {at}: {e}")
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Violation::Invalid {
            schema: schema.to_owned(),
            errors,
        })
    }
}

/// The schema of the `ok` result of `<service>.<command>`.
pub fn result_schema(service: &str, command: &str) -> String {
    format!("{service}.{command}.result")
}

/// Checks a reply: its shape against `reply`, and an `ok` reply's result against the
/// command's result schema. Rejections, receipts and suspensions carry no result.
pub fn check_reply(service: &str, command: &str, reply: &Reply) -> Result<(), Violation> {
    let whole = serde_json::to_value(reply).expect("a reply serialises");
    check("reply", &whole)?;
    if reply.status == ReplyStatus::Ok {
        let result = reply.result.clone().unwrap_or(serde_json::Value::Null);
        check(&result_schema(service, command), &result)?;
    }
    Ok(())
}

/// Checks an event body against the schema named by its `type` property.
pub fn check_event(message_type: &str, body: &serde_json::Value) -> Result<(), Violation> {
    if message_type.is_empty() {
        return Err(Violation::NoSchema {
            schema: String::new(),
            path: schema_dir(),
        });
    }
    check(message_type, body)
}

/// Panics the test with the schema's name and every validation error.
#[track_caller]
pub fn assert_ok(outcome: Result<(), Violation>, what: &str, body: &dyn fmt::Debug) {
    if let Err(v) = outcome {
        panic!("contract violation in {what}: {v}\nbody: {body:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declare_wages_result(source: &str, clamp: &str) -> serde_json::Value {
        json!({"bases": [{"id_number": "420102196001010012", "insurance_type": "pension",
            "year": 2024, "base": "3627.60", "source": source, "clamp": clamp}]})
    }

    #[test]
    fn a_body_with_the_published_names_passes() {
        check(
            "collection.declare-wages.result",
            &declare_wages_result("previous-year-average", "raised-to-floor"),
        )
        .expect("valid");
    }

    #[test]
    fn wrong_field_names_and_wrong_values_are_rejected_with_the_schema_named() {
        // The field names of another spelling: `id-number` instead of `id_number`.
        let renamed = json!({"bases": [{"id-number": "420102196001010012", "insurance_type": "pension",
            "year": 2024, "base": "3627.60", "source": "current-month", "clamp": "none"}]});
        let err = check("collection.declare-wages.result", &renamed).unwrap_err();
        assert_eq!(err.schema(), "collection.declare-wages.result");
        let Violation::Invalid { errors, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            errors.iter().any(|e| e.contains("id_number")),
            "the missing field is named: {errors:?}"
        );
        // The values the service used to send before the reply was built from its contract.
        let snake = declare_wages_result("previous_year_average", "raised_to_floor");
        let err = check("collection.declare-wages.result", &snake).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/bases/0/source") && text.contains("/bases/0/clamp"),
            "{text}"
        );
    }

    #[test]
    fn a_type_without_a_committed_schema_fails() {
        let err = check_event("collection.no-such-event.v1", &json!({})).unwrap_err();
        assert!(matches!(err, Violation::NoSchema { .. }), "{err}");
        assert!(check_event("", &json!({})).is_err());
        assert!(check("../Cargo", &json!({})).is_err());
    }

    #[test]
    fn replies_are_checked_for_shape_and_result() {
        let ok = Reply::ok(json!({"version": "one"}));
        let err = check_reply("collection", "set-policy", &ok).unwrap_err();
        assert_eq!(err.schema(), "collection.set-policy.result", "{err}");
        let ok = Reply::ok(json!({"newly_in_arrears": 3}));
        check_reply("collection", "detect-arrears", &ok).expect("valid");
        // A rejection has no result to check, whatever the command.
        let rejected = Reply::rejected(contracts::ErrorBody::new(
            contracts::ErrorCode::UnknownCommand,
            "no such command",
        ));
        check_reply("collection", "no-such-command", &rejected).expect("valid");
        // An `ok` reply without a result does not match a result schema that wants an object.
        let empty = Reply {
            result: None,
            ..Reply::ok(json!(null))
        };
        assert!(check_reply("collection", "detect-arrears", &empty).is_err());
    }

    #[test]
    fn every_committed_schema_compiles() {
        let dir = schema_dir();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the schema folder") {
            let name = entry.expect("entry").file_name().into_string().expect("utf-8");
            let stem = name.strip_suffix(".json").expect("only .json files");
            if let Err(e) = validator(stem) {
                panic!("{e}");
            }
            n += 1;
        }
        assert!(n > 40, "found only {n} schemas in {}", dir.display());
    }
}
