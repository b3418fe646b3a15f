//! Command handlers: decode, validate through `domain`, write through `store`, emit events.

use crate::domain::{self, Category, Rejection, conflict, invalid, not_found};
use crate::store;
use async_trait::async_trait;
use contracts::enrollment::SERVICE;
use contracts::enrollment::commands as c;
use contracts::enrollment::events::{self as e, EnrollmentEvent};
use contracts::{ErrorBody, ErrorCode, Line, MessageKind};
use deadpool_postgres::Transaction;
use messaging::{Handled, Handler, HandlerError, Incoming, Names, Outgoing};
use uuid::Uuid;

pub struct EnrollmentHandler {
    pub names: Names,
    /// This agency's region code: certificates are issued from it and accepted into it.
    pub region: String,
}

type HResult = Result<Handled, HandlerError>;

fn reject(r: Rejection) -> HandlerError {
    HandlerError::Rejected(r)
}

impl EnrollmentHandler {
    fn event<E: EnrollmentEvent>(&self, line: Line, event: &E, cause: &Incoming) -> Outgoing {
        let body = serde_json::to_value(event).expect("events serialise");
        Outgoing::event(
            &self.names,
            line,
            SERVICE,
            E::NAME,
            E::VERSION,
            body,
            Some(&cause.envelope),
        )
    }

    fn ok<T: serde::Serialize>(result: &T, outgoing: Vec<Outgoing>) -> HResult {
        Ok(Handled {
            result: Some(serde_json::to_value(result).expect("results serialise")),
            outgoing,
            ..Default::default()
        })
    }
}

/// The payer kind of an enrollment command, for freeze orders scoped by payer kind (Wuhan
/// 2021 stopped resident medical a day before employee medical): the category of the person
/// enrolled (an employee's contributions are paid by the employer), and `employer` for the
/// employer's own commands. Commands that name only a person (change-contact, suspend, ...)
/// carry no category and are not matched by an order limited to payer kinds.
pub fn payer_kind_of(command: &str, body: &serde_json::Value) -> Option<String> {
    match command {
        "enroll-person" => match body.get("category")?.as_str()? {
            "employee" => Some("employer".into()),
            k @ ("flexible" | "resident" | "retiree") => Some(k.into()),
            _ => None,
        },
        "register-employer" | "add-staff" | "remove-staff" => Some("employer".into()),
        _ => None,
    }
}

#[async_trait]
impl Handler for EnrollmentHandler {
    fn payer_kind(&self, msg: &Incoming) -> Option<String> {
        payer_kind_of(&msg.name, &msg.body)
    }

    /// A command naming an enrolled person (change-contact, suspend, terminate, transfers):
    /// the person's category, as `enroll-person` gives it.
    async fn payer_kind_lookup(&self, db: &deadpool_postgres::Client, msg: &Incoming) -> Option<String> {
        let id_number = msg.body.get("id_number")?.as_str()?;
        let row = db
            .query_opt("select category from persons where id_number = $1", &[&id_number])
            .await
            .ok()??;
        let category: String = row.get(0);
        payer_kind_of("enroll-person", &serde_json::json!({ "category": category }))
    }

    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        if msg.kind != MessageKind::Command {
            return Err(HandlerError::Permanent(anyhow::anyhow!(
                "enrollment consumes no events ({})",
                msg.name
            )));
        }
        match msg.name.as_str() {
            "enroll-person" => self.enroll_person(tx, msg).await,
            "register-employer" => self.register_employer(tx, msg).await,
            "add-staff" => self.add_staff(tx, msg).await,
            "remove-staff" => self.remove_staff(tx, msg).await,
            "suspend" => self.change_status(tx, msg, Status::Suspended).await,
            "terminate" => self.change_status(tx, msg, Status::Terminated).await,
            "change-contact" => self.change_contact(tx, msg).await,
            "transfer-out" => self.transfer_out(tx, msg).await,
            "transfer-in" => self.transfer_in(tx, msg).await,
            "get-person" => self.get_person(tx, msg).await,
            other => Err(reject(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!(
                    "enrollment has no command '{other}'; it has enroll-person, register-employer, add-staff, \
                     remove-staff, suspend, terminate, change-contact, transfer-out, transfer-in, get-person"
                ),
            ))),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Suspended,
    Terminated,
}

impl EnrollmentHandler {
    async fn enroll_person(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::EnrollPerson = msg.decode()?;
        let v = domain::Enrollment::validate(msg.line, &cmd).map_err(reject)?;
        let employer = v.employer.as_ref().map(|c| c.as_str());
        if let Some(code) = employer
            && store::employer_on_line(tx, code, msg.line.as_str())
                .await?
                .is_none()
        {
            return Err(reject(not_found(
                "employer_credit_code",
                format!(
                    "employer {} is not registered on the {} line",
                    v.employer.as_ref().expect("some"),
                    msg.line
                ),
            )));
        }
        let (person, _new) = store::upsert_person(
            tx,
            v.id_number.as_str(),
            &v.name,
            v.phone.as_str(),
            v.category.as_str(),
        )
        .await?;
        let current = store::enrollments(tx, person.person_id).await?;
        for t in &v.types {
            if let Some(active) = current
                .iter()
                .find(|e| e.insurance_type == *t && e.status == "active")
            {
                return Err(reject(conflict(
                    "insurance_types",
                    format!(
                        "{} is already actively enrolled in {t} since {}",
                        v.id_number, active.effective_month
                    ),
                )));
            }
        }
        let month = v.effective_month.to_string();
        for t in &v.types {
            store::set_enrollment(tx, person.person_id, *t, "active", &month, employer, None).await?;
        }
        store::set_category(tx, person.person_id, v.category.as_str()).await?;
        store::record_person_version(tx, person.person_id, "enrolled", None, &msg.envelope).await?;
        tracing::info!(id_number = %v.id_number, types = ?v.types, "person enrolled");
        let event = e::PersonEnrolled {
            person_id: person.person_id.to_string(),
            id_number: v.id_number.as_str().to_owned(),
            name: person.name.clone(),
            category: v.category.as_str().to_owned(),
            insurance_types: v.types.clone(),
            employer_credit_code: employer.map(str::to_owned),
            effective_month: month.clone(),
            line: msg.line,
            minimum_years_met: v.minimum_years_met,
            phone: Some(person.phone.clone()),
        };
        let result = c::EnrollPersonResult {
            person_id: person.person_id.to_string(),
            enrollments: v
                .types
                .iter()
                .map(|t| c::EnrollmentView {
                    insurance_type: *t,
                    status: "active".into(),
                    effective_month: month.clone(),
                    employer_credit_code: employer.map(str::to_owned),
                })
                .collect(),
        };
        Self::ok(&result, vec![self.event(msg.line, &event, msg)])
    }

    async fn register_employer(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RegisterEmployer = msg.decode()?;
        let code = domain::credit_code("credit_code", &cmd.credit_code).map_err(reject)?;
        let name = domain::name("name", &cmd.name).map_err(reject)?;
        let contact_name = domain::name("contact.name", &cmd.contact.name).map_err(reject)?;
        let contact_phone = domain::phone("contact.phone", &cmd.contact.phone).map_err(reject)?;
        tx.execute(
            &tx.prepare_cached(
                "insert into employers (employer_id, credit_code, name, contact_name, contact_phone)
             values ($1, $2, $3, $4, $5) on conflict (credit_code) do nothing",
            )
            .await?,
            &[
                &Uuid::now_v7(),
                &code.as_str(),
                &name,
                &contact_name,
                &contact_phone.as_str(),
            ],
        )
        .await?;
        let registered = tx
            .execute(
                &tx.prepare_cached(
                    "insert into employer_lines (credit_code, line) values ($1, $2) on conflict do nothing",
                )
                .await?,
                &[&code.as_str(), &msg.line.as_str()],
            )
            .await?;
        if registered == 0 {
            return Err(reject(conflict(
                "credit_code",
                format!("employer {code} is already registered on the {} line", msg.line),
            )));
        }
        let employer_id: Uuid = tx
            .query_one(
                &tx.prepare_cached("select employer_id from employers where credit_code = $1")
                    .await?,
                &[&code.as_str()],
            )
            .await?
            .get(0);
        store::record_employer_version(tx, employer_id, "registered", None, &msg.envelope).await?;
        let event = e::EmployerRegistered {
            employer_id: employer_id.to_string(),
            credit_code: code.as_str().to_owned(),
            name,
            line: msg.line,
            contact_phone: Some(contact_phone.as_str().to_owned()),
        };
        let result = c::RegisterEmployerResult {
            employer_id: employer_id.to_string(),
            credit_code: code.as_str().to_owned(),
        };
        Self::ok(&result, vec![self.event(msg.line, &event, msg)])
    }

    async fn registered_employer(
        &self,
        tx: &Transaction<'_>,
        line: Line,
        raw: &str,
    ) -> Result<String, HandlerError> {
        let code = domain::credit_code("employer_credit_code", raw).map_err(reject)?;
        if store::employer_on_line(tx, code.as_str(), line.as_str())
            .await?
            .is_none()
        {
            return Err(reject(not_found(
                "employer_credit_code",
                format!("employer {code} is not registered on the {line} line"),
            )));
        }
        Ok(code.as_str().to_owned())
    }

    async fn add_staff(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::AddStaff = msg.decode()?;
        let types = domain::staff_types("insurance_types", msg.line, &cmd.insurance_types).map_err(reject)?;
        let month = domain::month("month", &cmd.month).map_err(reject)?.to_string();
        if cmd.persons.is_empty() {
            return Err(reject(invalid("persons", "at least one person is required")));
        }
        let employer = self
            .registered_employer(tx, msg.line, &cmd.employer_credit_code)
            .await?;
        let mut added = Vec::with_capacity(cmd.persons.len());
        for (i, p) in cmd.persons.iter().enumerate() {
            let id = domain::id_number(&format!("persons[{i}].id_number"), &p.id_number).map_err(reject)?;
            if added.iter().any(|a: &e::StaffPerson| a.id_number == id.as_str()) {
                return Err(reject(invalid(
                    format!("persons[{i}].id_number"),
                    format!("{id} is listed twice"),
                )));
            }
            let person = match store::lock_person(tx, id.as_str()).await? {
                Some(person) => person,
                None => {
                    let name = p.name.as_deref().ok_or_else(|| {
                        reject(invalid(
                            format!("persons[{i}].name"),
                            "required for a person not yet registered",
                        ))
                    })?;
                    let name = domain::name(&format!("persons[{i}].name"), name).map_err(reject)?;
                    let phone = p.phone.as_deref().ok_or_else(|| {
                        reject(invalid(
                            format!("persons[{i}].phone"),
                            "required for a person not yet registered",
                        ))
                    })?;
                    let phone = domain::phone(&format!("persons[{i}].phone"), phone).map_err(reject)?;
                    store::upsert_person(tx, id.as_str(), &name, phone.as_str(), "employee")
                        .await?
                        .0
                }
            };
            let current = store::enrollments(tx, person.person_id).await?;
            for t in &types {
                if let Some(active) = current
                    .iter()
                    .find(|e| e.insurance_type == *t && e.status == "active")
                {
                    let whom = active
                        .employer_credit_code
                        .as_deref()
                        .unwrap_or("no employer (self-paid)");
                    return Err(reject(conflict(
                        format!("persons[{i}].id_number"),
                        format!("{id} is already actively enrolled in {t} through {whom}"),
                    )));
                }
                store::set_enrollment(tx, person.person_id, *t, "active", &month, Some(&employer), None)
                    .await?;
            }
            store::set_category(tx, person.person_id, Category::Employee.as_str()).await?;
            store::record_person_version(tx, person.person_id, "staff-added", None, &msg.envelope).await?;
            added.push(e::StaffPerson {
                person_id: person.person_id.to_string(),
                id_number: id.as_str().to_owned(),
                phone: Some(person.phone.clone()),
            });
        }
        let event = e::StaffAdded {
            employer_credit_code: employer.clone(),
            persons: added.clone(),
            insurance_types: types.clone(),
            month: month.clone(),
            line: msg.line,
        };
        let result = c::StaffChangeResult {
            employer_credit_code: employer,
            persons: added.into_iter().map(|p| p.person_id).collect(),
            insurance_types: types,
            month,
        };
        Self::ok(&result, vec![self.event(msg.line, &event, msg)])
    }

    async fn remove_staff(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RemoveStaff = msg.decode()?;
        let types = domain::staff_types("insurance_types", msg.line, &cmd.insurance_types).map_err(reject)?;
        let month = domain::month("month", &cmd.month).map_err(reject)?.to_string();
        if cmd.id_numbers.is_empty() {
            return Err(reject(invalid("id_numbers", "at least one person is required")));
        }
        let employer = self
            .registered_employer(tx, msg.line, &cmd.employer_credit_code)
            .await?;
        let reason = cmd.reason.clone().unwrap_or_else(|| "left the employer".into());
        let mut removed = Vec::new();
        for (i, raw) in cmd.id_numbers.iter().enumerate() {
            let field = format!("id_numbers[{i}]");
            let id = domain::id_number(&field, raw).map_err(reject)?;
            let person = store::lock_person(tx, id.as_str())
                .await?
                .ok_or_else(|| reject(not_found(&field, format!("no person with ID number {id}"))))?;
            let current = store::enrollments(tx, person.person_id).await?;
            for t in &types {
                let on_staff = current.iter().any(|e| {
                    e.insurance_type == *t
                        && e.status == "active"
                        && e.employer_credit_code.as_deref() == Some(employer.as_str())
                });
                if !on_staff {
                    return Err(reject(conflict(
                        &field,
                        format!("{id} is not actively enrolled in {t} through employer {employer}"),
                    )));
                }
                store::change_status(tx, person.person_id, *t, "suspended", &month, &reason).await?;
            }
            store::record_person_version(
                tx,
                person.person_id,
                "staff-removed",
                Some(&reason),
                &msg.envelope,
            )
            .await?;
            removed.push(e::StaffPerson {
                person_id: person.person_id.to_string(),
                id_number: id.as_str().to_owned(),
                phone: Some(person.phone.clone()),
            });
        }
        let event = e::StaffRemoved {
            employer_credit_code: employer.clone(),
            persons: removed.clone(),
            insurance_types: types.clone(),
            month: month.clone(),
            line: msg.line,
        };
        let result = c::StaffChangeResult {
            employer_credit_code: employer,
            persons: removed.into_iter().map(|p| p.person_id).collect(),
            insurance_types: types,
            month,
        };
        Self::ok(&result, vec![self.event(msg.line, &event, msg)])
    }

    async fn change_status(&self, tx: &Transaction<'_>, msg: &Incoming, to: Status) -> HResult {
        let cmd: c::ChangeEnrollmentStatus = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let types =
            domain::insurance_types("insurance_types", msg.line, &cmd.insurance_types).map_err(reject)?;
        let reason = domain::reason("reason", &cmd.reason).map_err(reject)?;
        let month = domain::month("month", &cmd.month).map_err(reject)?.to_string();
        let person = store::lock_person(tx, id.as_str())
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("no person with ID number {id}"))))?;
        let current = store::enrollments(tx, person.person_id).await?;
        let (status, change) = match to {
            Status::Suspended => ("suspended", "suspended"),
            Status::Terminated => ("terminated", "terminated"),
        };
        for t in &types {
            let Some(en) = current.iter().find(|e| e.insurance_type == *t) else {
                return Err(reject(not_found(
                    "insurance_types",
                    format!("{id} has no enrollment in {t}"),
                )));
            };
            let allowed = match to {
                Status::Suspended => en.status == "active",
                Status::Terminated => en.status != "terminated",
            };
            if !allowed {
                return Err(reject(conflict(
                    "insurance_types",
                    format!(
                        "{id}'s enrollment in {t} is {} and cannot become {status}",
                        en.status
                    ),
                )));
            }
            store::change_status(tx, person.person_id, *t, status, &month, &reason).await?;
        }
        store::record_person_version(tx, person.person_id, change, Some(&reason), &msg.envelope).await?;
        let body = e::EnrollmentStatusChanged {
            person_id: person.person_id.to_string(),
            id_number: id.as_str().to_owned(),
            insurance_types: types.clone(),
            reason,
            month,
            line: msg.line,
        };
        let event = match to {
            Status::Suspended => self.event(msg.line, &e::EnrollmentSuspended(body), msg),
            Status::Terminated => self.event(msg.line, &e::EnrollmentTerminated(body), msg),
        };
        let views: Vec<c::EnrollmentView> = store::enrollments(tx, person.person_id)
            .await?
            .iter()
            .filter(|e| types.contains(&e.insurance_type))
            .map(Into::into)
            .collect();
        Self::ok(
            &c::EnrollPersonResult {
                person_id: person.person_id.to_string(),
                enrollments: views,
            },
            vec![event],
        )
    }

    async fn change_contact(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ChangeContact = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        if cmd.name.is_none() && cmd.phone.is_none() && cmd.bank_account.is_none() {
            return Err(reject(invalid(
                "name",
                "nothing to change: give name, phone or bank_account",
            )));
        }
        let name = cmd
            .name
            .as_deref()
            .map(|n| domain::name("name", n))
            .transpose()
            .map_err(reject)?;
        let phone = cmd
            .phone
            .as_deref()
            .map(|p| domain::phone("phone", p))
            .transpose()
            .map_err(reject)?;
        let bank = cmd
            .bank_account
            .as_deref()
            .map(|b| domain::bank_account("bank_account", b))
            .transpose()
            .map_err(reject)?;
        let person = store::lock_person(tx, id.as_str())
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("no person with ID number {id}"))))?;
        let new_name = name.unwrap_or_else(|| person.name.clone());
        let new_phone = phone
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| person.phone.clone());
        let new_bank = bank.or_else(|| person.bank_account.clone());
        let mut changed = Vec::new();
        if new_name != person.name {
            changed.push("name".to_owned());
        }
        if new_phone != person.phone {
            changed.push("phone".to_owned());
        }
        if new_bank != person.bank_account {
            changed.push("bank_account".to_owned());
        }
        let result = serde_json::to_value(c::ChangeContactResult {
            person_id: person.person_id.to_string(),
            changed: changed.clone(),
        })
        .expect("results serialise");
        if changed.is_empty() {
            return Ok(Handled {
                result: Some(result),
                outgoing: vec![],
                ..Default::default()
            });
        }
        store::update_contact(tx, person.person_id, &new_name, &new_phone, new_bank.as_deref()).await?;
        store::record_person_version(
            tx,
            person.person_id,
            "contact-changed",
            cmd.reason.as_deref(),
            &msg.envelope,
        )
        .await?;
        // Published once on every line the person is enrolled on (or the command's line).
        let mut lines: Vec<Line> = store::enrollments(tx, person.person_id)
            .await?
            .iter()
            .map(|e| e.insurance_type.line())
            .collect();
        lines.push(msg.line);
        lines.sort();
        lines.dedup();
        let outgoing = lines
            .into_iter()
            .map(|line| {
                let event = e::ContactChanged {
                    person_id: person.person_id.to_string(),
                    id_number: id.as_str().to_owned(),
                    name: new_name.clone(),
                    phone: new_phone.clone(),
                    changed: changed.clone(),
                    line,
                };
                self.event(line, &event, msg)
            })
            .collect();
        Ok(Handled {
            result: Some(result),
            outgoing,
            ..Default::default()
        })
    }

    async fn transfer_out(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::TransferOut = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let types =
            domain::insurance_types("insurance_types", msg.line, &cmd.insurance_types).map_err(reject)?;
        let to_region = domain::region("to_region", &cmd.to_region).map_err(reject)?;
        if to_region == self.region {
            return Err(reject(invalid(
                "to_region",
                format!("{to_region} is this region; nothing to transfer"),
            )));
        }
        let person = store::lock_person(tx, id.as_str())
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("no person with ID number {id}"))))?;
        let current = store::enrollments(tx, person.person_id).await?;
        for t in &types {
            match current.iter().find(|e| e.insurance_type == *t) {
                None => {
                    return Err(reject(not_found(
                        "insurance_types",
                        format!("{id} has no enrollment in {t}"),
                    )));
                }
                Some(en) if en.status == "terminated" => {
                    return Err(reject(conflict(
                        "insurance_types",
                        format!("{id}'s enrollment in {t} is already terminated"),
                    )));
                }
                Some(_) => {}
            }
        }
        let reason = cmd
            .reason
            .clone()
            .unwrap_or_else(|| format!("transferred out to {to_region}"));
        // The month the request arrived in (China Standard Time): a transfer taken in at the
        // counter during a freeze ends the enrollment in that month, not in the thaw's.
        let month = msg
            .received_at
            .with_timezone(&contracts::freeze::cst())
            .format("%Y-%m")
            .to_string();
        for t in &types {
            store::change_status(tx, person.person_id, *t, "terminated", &month, &reason).await?;
        }
        let type_list: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
        let certificate = c::ParticipationCertificate {
            certificate_id: Uuid::now_v7().to_string(),
            id_number: id.as_str().to_owned(),
            name: person.name.clone(),
            insurance_types: types.clone(),
            from_region: self.region.clone(),
            to_region,
            contribution_history_ref: format!(
                "collection/contribution-history/{}?types={}",
                person.person_id,
                type_list.join(",")
            ),
            issued_at: chrono::Utc::now().fixed_offset(),
            // Collection holds the months and the account; the receiving region fetches them
            // by `contribution_history_ref`.
            contribution_months: None,
            pension_account_balance: None,
        };
        let cert_json = serde_json::to_value(&certificate).expect("certificates serialise");
        let cert_id: Uuid = certificate.certificate_id.parse().expect("a fresh uuid");
        tx.execute(
            &tx.prepare_cached("insert into certificates (certificate_id, direction, person_id, certificate) values ($1, 'out', $2, $3)").await?,
            &[&cert_id, &person.person_id, &cert_json],
        )
        .await?;
        store::record_person_version(
            tx,
            person.person_id,
            "transferred-out",
            Some(&reason),
            &msg.envelope,
        )
        .await?;
        let event = e::TransferredOut {
            person_id: person.person_id.to_string(),
            certificate: certificate.clone(),
            line: msg.line,
        };
        Self::ok(&certificate, vec![self.event(msg.line, &event, msg)])
    }

    async fn transfer_in(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::TransferIn = msg.decode()?;
        let cert = &cmd.certificate;
        let cert_id: Uuid = cert.certificate_id.parse().map_err(|_| {
            reject(invalid(
                "certificate.certificate_id",
                "not a certificate id (UUID)",
            ))
        })?;
        let id = domain::id_number("certificate.id_number", &cert.id_number).map_err(reject)?;
        let name = domain::name("certificate.name", &cert.name).map_err(reject)?;
        let raw_types: Vec<String> = cert
            .insurance_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        let types =
            domain::insurance_types("certificate.insurance_types", msg.line, &raw_types).map_err(reject)?;
        let from = domain::region("certificate.from_region", &cert.from_region).map_err(reject)?;
        if from == self.region {
            return Err(reject(invalid(
                "certificate.from_region",
                "a certificate from this region cannot be transferred in",
            )));
        }
        if cert.to_region != self.region {
            return Err(reject(invalid(
                "certificate.to_region",
                format!(
                    "the certificate is for region {}, this is {}",
                    cert.to_region, self.region
                ),
            )));
        }
        // Plain yuan with at most two decimals, carried over as given.
        let balance = match cert.pension_account_balance.as_deref().map(str::trim) {
            None => None,
            Some(b) => {
                let (int, frac) = b.split_once('.').unwrap_or((b, ""));
                let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
                if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 2 {
                    return Err(reject(invalid(
                        "certificate.pension_account_balance",
                        "an amount in yuan, not negative, at most two decimals",
                    )));
                }
                Some(format!("{int}.{frac:0<2}"))
            }
        };
        let phone = domain::phone("phone", &cmd.phone).map_err(reject)?;
        let category = Category::parse("category", &cmd.category).map_err(reject)?;
        domain::check_category("certificate.insurance_types", category, &types).map_err(reject)?;
        let month = domain::month("effective_month", &cmd.effective_month)
            .map_err(reject)?
            .to_string();
        let employer = match (&cmd.employer_credit_code, category) {
            (Some(code), Category::Employee) => Some(self.registered_employer(tx, msg.line, code).await?),
            (None, Category::Employee) => {
                return Err(reject(invalid(
                    "employer_credit_code",
                    "required for an employee",
                )));
            }
            (Some(_), _) => {
                return Err(reject(invalid(
                    "employer_credit_code",
                    "only employees have an employer",
                )));
            }
            (None, _) => None,
        };
        let (person, _) =
            store::upsert_person(tx, id.as_str(), &name, phone.as_str(), category.as_str()).await?;
        let accepted = tx
            .execute(
                &tx.prepare_cached(
                    "insert into certificates (certificate_id, direction, person_id, certificate)
                 values ($1, 'in', $2, $3) on conflict do nothing",
                )
                .await?,
                &[
                    &cert_id,
                    &person.person_id,
                    &serde_json::to_value(cert).expect("serialises"),
                ],
            )
            .await?;
        if accepted == 0 {
            return Err(reject(conflict(
                "certificate.certificate_id",
                "this certificate was already accepted",
            )));
        }
        let current = store::enrollments(tx, person.person_id).await?;
        let active: Vec<&store::Enrollment> = types
            .iter()
            .filter_map(|t| {
                current
                    .iter()
                    .find(|e| e.insurance_type == *t && e.status == "active")
            })
            .collect();
        // The Jinan flow: the person is enrolled and pays here first, then sends the
        // certificate. For a person actively enrolled in every type it lists, the certificate
        // is accepted and its history merged (the event carries it); the enrollment stays as
        // it is, from its own month.
        let merged = !active.is_empty();
        let (event_category, event_employer) = if merged {
            (person.category.clone(), active[0].employer_credit_code.clone())
        } else {
            (category.as_str().to_owned(), employer.clone())
        };
        let month = if active.is_empty() {
            for t in &types {
                store::set_enrollment(
                    tx,
                    person.person_id,
                    *t,
                    "active",
                    &month,
                    employer.as_deref(),
                    None,
                )
                .await?;
            }
            store::set_category(tx, person.person_id, category.as_str()).await?;
            month
        } else if active.len() == types.len() {
            active
                .iter()
                .map(|e| e.effective_month.clone())
                .min()
                .expect("at least one")
        } else {
            let enrolled: Vec<String> = active.iter().map(|e| e.insurance_type.to_string()).collect();
            return Err(reject(conflict(
                "certificate.insurance_types",
                format!(
                    "{id} is already actively enrolled in {} but not in the other types listed: \
                     a certificate is merged for an enrolled person, or enrolls one who is not, not both",
                    enrolled.join(", ")
                ),
            )));
        };
        store::record_person_version(
            tx,
            person.person_id,
            "transferred-in",
            Some(&format!("from {from}")),
            &msg.envelope,
        )
        .await?;
        let event = e::TransferredIn {
            person_id: person.person_id.to_string(),
            certificate_id: cert_id.to_string(),
            id_number: id.as_str().to_owned(),
            insurance_types: types.clone(),
            from_region: from,
            effective_month: month,
            line: msg.line,
            category: Some(event_category),
            employer_credit_code: event_employer,
            contribution_months: cert.contribution_months,
            pension_account_balance: balance,
        };
        let views: Vec<c::EnrollmentView> = store::enrollments(tx, person.person_id)
            .await?
            .iter()
            .filter(|e| types.contains(&e.insurance_type))
            .map(Into::into)
            .collect();
        Self::ok(
            &c::EnrollPersonResult {
                person_id: person.person_id.to_string(),
                enrollments: views,
            },
            vec![self.event(msg.line, &event, msg)],
        )
    }

    async fn get_person(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::GetPerson = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let row = tx
            .query_opt(
                &tx.prepare_cached("select person_id, id_number, name, phone, category, bank_account from persons where id_number = $1").await?,
                &[&id.as_str()],
            )
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("no person with ID number {id}"))))?;
        let person_id: Uuid = row.get(0);
        let view = c::PersonView {
            person_id: person_id.to_string(),
            id_number: row.get(1),
            name: row.get(2),
            phone: row.get(3),
            category: row.get(4),
            bank_account: row.get(5),
            enrollments: store::enrollments(tx, person_id)
                .await?
                .iter()
                .map(Into::into)
                .collect(),
            history: store::history(tx, "person", person_id).await?,
        };
        Self::ok(&view, vec![])
    }
}
