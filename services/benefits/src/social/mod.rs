//! Social-line benefits (human-resources bureau, issue 10 §5): the social projection,
//! retirement approval with the pension from policy data, unemployment and work-injury
//! awards, and the monthly payment run to the bank with its control totals. Commands and
//! events are on line `social`; the payment run is its own freeze group (`benefit-payment`),
//! which the Wuhan timetable leaves open while the rest of the social business is stopped.

pub mod awards;
pub mod payments;
pub mod projection;
pub mod retirement;

use crate::handlers::{BenefitsHandler, HResult};
use contracts::benefits::events::BenefitsEvent;
use contracts::{ErrorBody, ErrorCode, Line};
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming, Outgoing};

const COMMANDS: &str = "apply-retirement, review-retirement, retirement-status, grant-benefit, \
     run-benefit-payments, record-benefit-payments, batch-status";

impl BenefitsHandler {
    /// An event on the social line.
    pub fn social_event<E: BenefitsEvent>(&self, e: &E, cause: &Incoming) -> Outgoing {
        Outgoing::event(
            &self.names,
            Line::Social,
            contracts::benefits::SERVICE,
            E::NAME,
            E::VERSION,
            serde_json::to_value(e).expect("events serialise"),
            Some(&cause.envelope),
        )
    }
}

/// One social-line command.
pub async fn handle(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    match msg.name.as_str() {
        "apply-retirement" => retirement::apply(h, tx, msg).await,
        "review-retirement" => retirement::review(h, tx, msg).await,
        "retirement-status" => retirement::status(tx, msg).await,
        "grant-benefit" => awards::grant(h, tx, msg).await,
        "run-benefit-payments" => payments::run(h, tx, msg).await,
        "record-benefit-payments" => payments::record(h, tx, msg).await,
        "batch-status" => payments::status(tx, msg).await,
        other => Err(HandlerError::Rejected(ErrorBody::new(
            ErrorCode::UnknownCommand,
            format!("benefits has no social-line command '{other}'; it has {COMMANDS}"),
        ))),
    }
}

/// Whether `name` is a social-line command (refused on the medical line).
pub fn is_social_command(name: &str) -> bool {
    COMMANDS.split(", ").any(|c| c.trim() == name)
}

pub fn month(field: &str, s: &str) -> Result<contracts::ids::YearMonth, HandlerError> {
    contracts::ids::YearMonth::parse(s).map_err(|e| crate::handlers::invalid(field, e.to_string()))
}
