//! Benefits' handlers: enrollment and collection events feed the projection; commands are
//! decoded, validated into domain values at the edge, applied and answered.

use crate::{account, claims, filings, policy, projection, reconcile, settle};
use async_trait::async_trait;
use contracts::benefits::events::BenefitsEvent;
use contracts::{ErrorBody, ErrorCode, InsuranceType, Line, MessageKind};
use deadpool_postgres::Transaction;
use messaging::{Handled, Handler, HandlerError, Incoming, Names, Outgoing};
use rust_decimal::Decimal;
use uuid::Uuid;

pub struct BenefitsHandler {
    pub names: Names,
    /// The freeze orders this service holds (set once the runtime is built, see
    /// `crate::build`): claims judge settlement stops and extended deadlines by them.
    pub freeze: std::sync::Arc<std::sync::OnceLock<messaging::freeze::Freeze>>,
}

pub type HResult = Result<Handled, HandlerError>;

pub fn reject(code: ErrorCode, field: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Rejected(ErrorBody::new(code, message).with_field(field))
}

pub fn invalid(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::InvalidField, field, message)
}

pub fn not_found(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::NotFound, field, message)
}

pub fn conflict(field: &str, message: impl Into<String>) -> HandlerError {
    reject(ErrorCode::Conflict, field, message)
}

pub fn ok<T: serde::Serialize>(result: &T, outgoing: Vec<Outgoing>) -> HResult {
    Ok(Handled {
        result: Some(serde_json::to_value(result).expect("results serialise")),
        outgoing,
        ..Default::default()
    })
}

/// A money field: non-negative, at most two decimals.
pub fn money(field: &str, s: &str) -> Result<Decimal, HandlerError> {
    crate::domain::money::parse(s, 2).map_err(|e| invalid(field, e.to_string()))
}

pub fn uuid(field: &str, s: &str) -> Result<Uuid, HandlerError> {
    s.parse()
        .map_err(|_| not_found(field, format!("'{s}' names nothing this service issued")))
}

/// NHSA `insutype` → the insurance type (310, 390, 330).
pub fn insutype(field: &str, s: &str) -> Result<InsuranceType, HandlerError> {
    match s {
        "310" => Ok(InsuranceType::EmployeeMedical),
        "390" => Ok(InsuranceType::ResidentMedical),
        "330" => Ok(InsuranceType::LargeAmountMedical),
        other => Err(invalid(
            field,
            format!("'{other}' is not an NHSA insurance type this service settles (310, 390, 330)"),
        )),
    }
}

pub fn nhsa_code(t: InsuranceType) -> &'static str {
    t.authority_code().1
}

/// China Standard Time, the day settlements and deadlines are judged by.
pub fn cst() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// An NHSA time: ISO 8601 with an offset, or `yyyy-MM-dd HH:mm:ss` in China time.
pub fn time(field: &str, s: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, HandlerError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .and_then(|n| n.and_local_timezone(cst()).single())
        .ok_or_else(|| {
            invalid(
                field,
                format!("'{s}' is not a time (ISO 8601 with offset, or yyyy-MM-dd HH:mm:ss)"),
            )
        })
}

pub fn date(field: &str, s: &str) -> Result<chrono::NaiveDate, HandlerError> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("'{s}' is not a date (yyyy-MM-dd)")))
}

impl BenefitsHandler {
    pub fn event<E: BenefitsEvent>(&self, e: &E, cause: &Incoming) -> Outgoing {
        let body = serde_json::to_value(e).expect("events serialise");
        Outgoing::event(
            &self.names,
            Line::Medical,
            contracts::benefits::SERVICE,
            E::NAME,
            E::VERSION,
            body,
            Some(&cause.envelope),
        )
    }
}

const COMMANDS: &str = "person-info, eligibility, register-visit, admit, cancel-visit, discharge, upload-fees, \
     cancel-fees, pre-settle, settle, cancel-settlement, reverse, authorise-mutual-aid, revoke-mutual-aid, \
     account-balance, account-statement, reconcile-totals, reconcile-details, reconcile-service, set-benefit-policy, submit-claim, review-claim, \
     add-claim-documents, claim-status, record-claim-payment, file-cross-region, file-chronic-disease, \
     file-special-drug, review-filing, revoke-filing, filing-status";

#[async_trait]
impl Handler for BenefitsHandler {
    #[tracing::instrument(skip_all, fields(name = %msg.name, message_id = %msg.envelope.message_id))]
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        if msg.kind == MessageKind::Event {
            if msg.line == Line::Social {
                return crate::social::projection::apply(tx, msg).await;
            }
            return projection::apply(tx, msg).await;
        }
        // Social-line business is only on the social line, settlement only on the medical.
        if msg.line == Line::Social {
            return crate::social::handle(self, tx, msg).await;
        }
        if crate::social::is_social_command(&msg.name) {
            return Err(HandlerError::Rejected(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!(
                    "'{}' is social-line business: send it as social.benefits.{}",
                    msg.name, msg.name
                ),
            )));
        }
        match msg.name.as_str() {
            "person-info" => settle::person_info(tx, msg).await,
            "eligibility" => settle::eligibility(tx, msg).await,
            "register-visit" => settle::register(tx, msg, "outpatient").await,
            "admit" => settle::register(tx, msg, "inpatient").await,
            "cancel-visit" => settle::cancel_visit(tx, msg).await,
            "discharge" => settle::discharge(tx, msg).await,
            "upload-fees" => settle::upload_fees(tx, msg).await,
            "cancel-fees" => settle::cancel_fees(tx, msg).await,
            "pre-settle" => settle::settle(self, tx, msg, false).await,
            "settle" => settle::settle(self, tx, msg, true).await,
            "cancel-settlement" => settle::cancel_settlement(self, tx, msg).await,
            "reverse" => settle::reverse(self, tx, msg).await,
            "authorise-mutual-aid" => account::authorise(tx, msg, true).await,
            "revoke-mutual-aid" => account::authorise(tx, msg, false).await,
            "account-balance" => account::balance(tx, msg).await,
            "account-statement" => account::statement(tx, msg).await,
            "reconcile-totals" => reconcile::totals(tx, msg).await,
            "reconcile-details" => reconcile::details(tx, msg).await,
            "reconcile-service" => reconcile::service(tx, msg).await,
            "set-benefit-policy" => policy::set(tx, msg).await,
            "submit-claim" => claims::submit(self, tx, msg).await,
            "review-claim" => claims::review(self, tx, msg).await,
            "add-claim-documents" => claims::add_claim_documents(self, tx, msg).await,
            "claim-status" => claims::status(tx, msg).await,
            "record-claim-payment" => claims::record_payment(self, tx, msg).await,
            "file-cross-region" => filings::file_cross_region(self, tx, msg).await,
            "file-chronic-disease" => filings::file_chronic_disease(self, tx, msg).await,
            "file-special-drug" => filings::file_special_drug(self, tx, msg).await,
            "review-filing" => filings::review(self, tx, msg).await,
            "revoke-filing" => filings::revoke(self, tx, msg).await,
            "filing-status" => filings::status(tx, msg).await,
            other => Err(HandlerError::Rejected(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!("benefits has no command '{other}'; it has {COMMANDS}"),
            ))),
        }
    }
}
