//! JSON Schemas generated from the contract types. `schemas/` holds the committed copies;
//! the `schemas_do_not_drift` test fails when they differ from what the types generate.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p contracts schemas_do_not_drift`.

use crate::enrollment::{commands as c, events as e};
use schemars::{JsonSchema, schema_for};
use std::collections::BTreeMap;

fn entry<T: JsonSchema>(out: &mut BTreeMap<String, serde_json::Value>, name: &str) {
    let schema = serde_json::to_value(schema_for!(T)).expect("a schema serialises");
    out.insert(format!("{name}.json"), schema);
}

/// File name → schema, for every message body and the reply.
pub fn all() -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    entry::<crate::Reply>(&mut out, "reply");
    entry::<c::EnrollPerson>(&mut out, "enrollment.enroll-person.command");
    entry::<c::RegisterEmployer>(&mut out, "enrollment.register-employer.command");
    entry::<c::AddStaff>(&mut out, "enrollment.add-staff.command");
    entry::<c::RemoveStaff>(&mut out, "enrollment.remove-staff.command");
    entry::<c::ChangeEnrollmentStatus>(&mut out, "enrollment.suspend.command");
    entry::<c::ChangeEnrollmentStatus>(&mut out, "enrollment.terminate.command");
    entry::<c::ChangeContact>(&mut out, "enrollment.change-contact.command");
    entry::<c::TransferOut>(&mut out, "enrollment.transfer-out.command");
    entry::<c::TransferIn>(&mut out, "enrollment.transfer-in.command");
    entry::<c::GetPerson>(&mut out, "enrollment.get-person.command");
    entry::<c::EnrollPersonResult>(&mut out, "enrollment.enroll-person.result");
    entry::<c::RegisterEmployerResult>(&mut out, "enrollment.register-employer.result");
    entry::<c::StaffChangeResult>(&mut out, "enrollment.staff-change.result");
    entry::<c::PersonView>(&mut out, "enrollment.get-person.result");
    entry::<e::EmployerRegistered>(&mut out, "enrollment.employer-registered.v1");
    entry::<e::PersonEnrolled>(&mut out, "enrollment.person-enrolled.v1");
    entry::<e::StaffAdded>(&mut out, "enrollment.staff-added.v1");
    entry::<e::StaffRemoved>(&mut out, "enrollment.staff-removed.v1");
    entry::<e::EnrollmentSuspended>(&mut out, "enrollment.enrollment-suspended.v1");
    entry::<e::EnrollmentTerminated>(&mut out, "enrollment.enrollment-terminated.v1");
    entry::<e::ContactChanged>(&mut out, "enrollment.contact-changed.v1");
    entry::<e::TransferredOut>(&mut out, "enrollment.transferred-out.v1");
    entry::<e::TransferredIn>(&mut out, "enrollment.transferred-in.v1");
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn schemas_do_not_drift() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let generated = super::all();
        let mut drifted = Vec::new();
        for (file, schema) in &generated {
            let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
            let path = dir.join(file);
            if update {
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(file.clone());
            }
        }
        let committed: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let stale: Vec<&String> = committed.iter().filter(|f| !generated.contains_key(*f)).collect();
        assert!(
            drifted.is_empty() && stale.is_empty(),
            "schemas drifted from the contract types: changed {drifted:?}, stale {stale:?}; \
             regenerate with UPDATE_SCHEMAS=1 cargo test -p contracts schemas_do_not_drift"
        );
    }
}
