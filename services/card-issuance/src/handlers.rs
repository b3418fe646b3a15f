//! Command handlers: decode, check through `domain`, write through `store`, emit one event
//! per step. Every command answers with the person-visible status after it; a refusal
//! changes nothing (the transaction is rolled back).

use crate::domain::{
    self, By, CardState, Closed, CorrectionVia, Failure, Kind, Loss, Place, Rejection, Step, conflict,
    invalid, not_eligible, not_found,
};
use crate::projection::{self, Effect};
use crate::store::{self, App, Person};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use contracts::card::SERVICE;
use contracts::card::commands as c;
use contracts::card::events::CardEvent;
use contracts::ids::IdNumber;
use contracts::{Channel, ErrorBody, ErrorCode, Line, MessageKind};
use deadpool_postgres::Transaction;
use messaging::{Handled, Handler, HandlerError, Incoming, Names, Outgoing};
use uuid::Uuid;

pub struct CardHandler {
    pub names: Names,
}

type HResult = Result<Handled, HandlerError>;

fn reject(r: Rejection) -> HandlerError {
    HandlerError::Rejected(r)
}

fn today(at: DateTime<Utc>) -> chrono::NaiveDate {
    at.with_timezone(&contracts::freeze::cst()).date_naive()
}

/// The work of one command: the application after it and the events it caused.
struct Change {
    app: App,
    events: Vec<(&'static str, Option<String>)>,
}

impl Change {
    fn new(app: App) -> Self {
        Change { app, events: vec![] }
    }
}

#[async_trait]
impl Handler for CardHandler {
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        if msg.kind == MessageKind::Event {
            return self.on_event(tx, msg).await;
        }
        match msg.name.as_str() {
            "apply-card" => self.apply_card(tx, msg).await,
            "review-photo" => self.review_photo(tx, msg).await,
            "record-bank-account" => self.record_bank_account(tx, msg).await,
            "record-production" => self.record_production(tx, msg).await,
            "record-shipment" => self.record_shipment(tx, msg).await,
            "record-arrival" => self.record_arrival(tx, msg).await,
            "report-data-error" => self.report_data_error(tx, msg).await,
            "roll-back" => self.roll_back(tx, msg).await,
            "pick-up-card" => self.pick_up(tx, msg).await,
            "activate-card" => self.activate(tx, msg).await,
            "issue-instantly" => self.issue_instantly(tx, msg).await,
            "report-loss" => self.report_loss(tx, msg).await,
            "lift-loss" => self.lift_loss(tx, msg).await,
            "replace-card" => self.replace_card(tx, msg).await,
            "renew-card" => self.renew_card(tx, msg).await,
            "get-card-status" => self.get_status(tx, msg).await,
            other => Err(reject(ErrorBody::new(
                ErrorCode::UnknownCommand,
                format!(
                    "card-issuance has no command '{other}'; it has {}",
                    contracts::card::COMMANDS.join(", ")
                ),
            ))),
        }
    }
}

impl CardHandler {
    fn event(
        &self,
        name: &str,
        app: &App,
        person: &Person,
        note: Option<String>,
        cause: &Incoming,
    ) -> Outgoing {
        let shown = app.state.shown();
        let mut types = if person.active.is_empty() {
            person.all.clone()
        } else {
            person.active.clone()
        };
        types.sort();
        types.dedup();
        let mut lines: Vec<Line> = types.iter().map(|t| t.line()).collect();
        lines.sort();
        lines.dedup();
        let body = CardEvent {
            application_id: app.application_id.to_string(),
            id_number: app.id_number.clone(),
            kind: app.state.kind.as_str().to_owned(),
            step: app.state.step.as_str().to_owned(),
            state: shown.state.to_owned(),
            in_production: app.state.in_production(),
            insurance_types: types,
            lines,
            name: app.name.clone(),
            bank: app.bank.clone(),
            financial_account: app.financial_account.clone(),
            card_number: app.card_number.clone(),
            reason: note.or_else(|| app.state.reason.clone()),
            action: shown.action,
            attempt: app.attempt,
            occurred_at: app.last_step_at.with_timezone(&contracts::freeze::cst()),
        };
        Outgoing::event(
            &self.names,
            Line::Common,
            SERVICE,
            name,
            1,
            serde_json::to_value(&body).expect("events serialise"),
            Some(&cause.envelope),
        )
    }

    /// Records the step, writes the application, and replies with the status after it.
    async fn commit(&self, tx: &Transaction<'_>, msg: &Incoming, person: &Person, change: Change) -> HResult {
        let Change { mut app, events } = change;
        app.last_step_at = msg.received_at;
        store::save(tx, &app).await?;
        let mut outgoing = Vec::with_capacity(events.len());
        for (name, note) in events {
            store::add_step(
                tx,
                app.application_id,
                name,
                note.as_deref(),
                &msg.envelope,
                msg.received_at,
            )
            .await?;
            outgoing.push(self.event(name, &app, person, note, msg));
        }
        let view = view(tx, &app).await?;
        tracing::info!(
            application = %app.application_id,
            step = app.state.step.as_str(),
            state = %view.state,
            "card application changed"
        );
        Ok(Handled {
            result: Some(serde_json::to_value(&view).expect("results serialise")),
            outgoing,
            ..Default::default()
        })
    }

    async fn on_event(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        match projection::apply(tx, msg).await? {
            Effect::None => Ok(projection::handled()),
            Effect::Cancel { id_number, reason } => {
                let Some(mut app) = store::open_app(tx, &id_number).await? else {
                    return Ok(projection::handled());
                };
                let person = store::person(tx, &id_number).await?.unwrap_or(Person {
                    name: None,
                    active: vec![],
                    all: vec![],
                });
                app.state.closed = Some(Closed::Cancelled);
                app.state.failure = None;
                app.state.reason = Some(reason.clone());
                let mut change = Change::new(app);
                change.events.push(("card-cancelled", Some(reason)));
                let mut handled = self.commit(tx, msg, &person, change).await?;
                handled.result = None;
                Ok(handled)
            }
        }
    }

    /// A person known from enrollment with at least one active enrollment.
    async fn eligible(&self, tx: &Transaction<'_>, id: &IdNumber) -> Result<Person, HandlerError> {
        let person = store::person(tx, id.as_str()).await?.ok_or_else(|| {
            reject(not_eligible(
                "id_number",
                format!("{id} is not enrolled in any insurance: only insured persons get a card"),
            ))
        })?;
        if person.active.is_empty() {
            return Err(reject(not_eligible(
                "id_number",
                format!("{id} has no active enrollment (suspended or terminated)"),
            )));
        }
        Ok(person)
    }

    /// The person's open application, locked, and the person.
    async fn current(&self, tx: &Transaction<'_>, id: &IdNumber) -> Result<(App, Person), HandlerError> {
        let app = store::open_app(tx, id.as_str())
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("{id} has no card application"))))?;
        let person = store::person(tx, id.as_str()).await?.unwrap_or(Person {
            name: None,
            active: vec![],
            all: vec![],
        });
        Ok((app, person))
    }

    /// The open application of a bank answer: the one the bank was asked about, at `step`.
    async fn answered(
        &self,
        tx: &Transaction<'_>,
        msg_channel: Option<Channel>,
        raw_id: &str,
        application_id: &str,
        step: Step,
    ) -> Result<(App, Person), HandlerError> {
        let id = domain::id_number("id_number", raw_id).map_err(reject)?;
        if msg_channel != Some(Channel::Bank) {
            return Err(reject(not_eligible(
                "x-channel",
                "only the bank (channel bank) reports accounts, production, shipping and arrival",
            )));
        }
        let (app, person) = self.current(tx, &id).await?;
        if app.application_id.to_string() != application_id {
            return Err(reject(conflict(
                "application_id",
                format!("{application_id} is not {id}'s current application"),
            )));
        }
        expect_step(&app, step)?;
        Ok((app, person))
    }

    async fn apply_card(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ApplyCard = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let bank = domain::text("bank", &cmd.bank, 64).map_err(reject)?;
        let person = self.eligible(tx, &id).await?;
        if let Some(open) = store::open_app(tx, id.as_str()).await? {
            return Err(reject(conflict(
                "id_number",
                format!(
                    "{id} already has a card application ({}, at {}): use replace-card or renew-card",
                    open.application_id,
                    open.state.step.as_str()
                ),
            )));
        }
        let name = match cmd.name.as_deref().or(person.name.as_deref()) {
            Some(n) => domain::text("name", n, 64).map_err(reject)?,
            None => {
                return Err(reject(invalid(
                    "name",
                    "required: enrollment gave no name for this person",
                )));
            }
        };
        let app = App {
            application_id: Uuid::now_v7(),
            id_number: id.as_str().to_owned(),
            state: CardState {
                kind: Kind::First,
                step: Step::InfoCollected,
                failure: None,
                reason: None,
                correction_via: None,
                loss: None,
                closed: None,
                branch: None,
            },
            name,
            bank,
            financial_account: None,
            card_number: None,
            tracking_number: None,
            picked_up_by: None,
            attempt: 1,
            last_step_at: msg.received_at,
        };
        let mut change = Change::new(app);
        change.events.push(("card-applied", None));
        self.commit(tx, msg, &person, change).await
    }

    async fn review_photo(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ReviewPhoto = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let (mut app, person) = self.current(tx, &id).await?;
        expect_step(&app, Step::InfoCollected)?;
        let mut change;
        if cmd.approved {
            app.state.step = Step::PhotoApproved;
            change = Change::new(app);
            change.events.push(("photo-approved", None));
            change.events.push(("bank-account-requested", None));
        } else {
            change = failed(
                app,
                Failure::PhotoRejected,
                cmd.reason.as_deref(),
                "a rejected photo needs the reason",
                "photo-rejected",
            )?;
        }
        self.commit(tx, msg, &person, change).await
    }

    async fn record_bank_account(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordBankAccount = msg.decode()?;
        let (mut app, person) = self
            .answered(
                tx,
                msg.envelope.channel,
                &cmd.id_number,
                &cmd.application_id,
                Step::PhotoApproved,
            )
            .await?;
        let mut change;
        if cmd.opened {
            let account = domain::text(
                "financial_account",
                cmd.financial_account.as_deref().unwrap_or(""),
                40,
            )
            .map_err(|_| reject(invalid("financial_account", "an opened account needs its number")))?;
            app.financial_account = Some(account);
            app.state.step = Step::BankAccountOpened;
            change = Change::new(app);
            change.events.push(("bank-account-opened", None));
            change.events.push(("card-production-requested", None));
        } else {
            change = failed(
                app,
                Failure::BankAccountFailed,
                cmd.reason.as_deref(),
                "a failed opening needs the reason",
                "bank-account-failed",
            )?;
        }
        self.commit(tx, msg, &person, change).await
    }

    async fn record_production(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordProduction = msg.decode()?;
        let (mut app, person) = self
            .answered(
                tx,
                msg.envelope.channel,
                &cmd.id_number,
                &cmd.application_id,
                Step::BankAccountOpened,
            )
            .await?;
        let mut change;
        if cmd.produced {
            let number = domain::text("card_number", cmd.card_number.as_deref().unwrap_or(""), 32)
                .map_err(|_| reject(invalid("card_number", "a produced card needs its number")))?;
            app.card_number = Some(number);
            app.state.step = Step::CardProduced;
            change = Change::new(app);
            change.events.push(("card-produced", None));
        } else {
            change = failed(
                app,
                Failure::ProductionFailed,
                cmd.reason.as_deref(),
                "a failed production needs the reason",
                "card-production-failed",
            )?;
        }
        self.commit(tx, msg, &person, change).await
    }

    async fn record_shipment(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordShipment = msg.decode()?;
        let (mut app, person) = self
            .answered(
                tx,
                msg.envelope.channel,
                &cmd.id_number,
                &cmd.application_id,
                Step::CardProduced,
            )
            .await?;
        if app.state.kind == Kind::Instant {
            return Err(reject(conflict(
                "application_id",
                "an instantly issued card is not shipped",
            )));
        }
        app.tracking_number = cmd.tracking_number.clone();
        app.state.step = Step::Shipped;
        let mut change = Change::new(app);
        change.events.push(("card-shipped", cmd.tracking_number));
        self.commit(tx, msg, &person, change).await
    }

    async fn record_arrival(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RecordArrival = msg.decode()?;
        let branch = domain::text("branch", &cmd.branch, 100).map_err(reject)?;
        let (mut app, person) = self
            .answered(
                tx,
                msg.envelope.channel,
                &cmd.id_number,
                &cmd.application_id,
                Step::Shipped,
            )
            .await?;
        app.state.branch = Some(branch.clone());
        app.state.step = Step::ArrivedAtBranch;
        let mut change = Change::new(app);
        change.events.push(("card-arrived", Some(branch)));
        self.commit(tx, msg, &person, change).await
    }

    async fn report_data_error(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ReportDataError = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let reason = domain::text("reason", &cmd.reason, 200).map_err(reject)?;
        let via = CorrectionVia::parse(&cmd.correction_via)
            .ok_or_else(|| reject(invalid("correction_via", "expected agency or hospital")))?;
        let (mut app, person) = self.current(tx, &id).await?;
        not_failed_or_lost(&app)?;
        if app.state.step < Step::CardProduced {
            return Err(reject(conflict(
                "id_number",
                format!(
                    "no card has been made yet (the application is at {})",
                    app.state.step.as_str()
                ),
            )));
        }
        app.state.failure = Some(Failure::CardDataError);
        app.state.reason = Some(reason);
        app.state.correction_via = Some(via);
        let mut change = Change::new(app);
        change.events.push((
            "card-data-error-reported",
            Some(format!("更正途径：{}", via.as_str())),
        ));
        self.commit(tx, msg, &person, change).await
    }

    async fn roll_back(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RollBack = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        if msg.envelope.channel != Some(Channel::Counter) {
            return Err(reject(not_eligible(
                "x-channel",
                "a rollback (回退) is done by the agency, at the counter",
            )));
        }
        let corrected = cmd
            .corrected_name
            .as_deref()
            .map(|n| domain::text("corrected_name", n, 64))
            .transpose()
            .map_err(reject)?;
        let (mut app, person) = self.current(tx, &id).await?;
        let Some(failure) = app.state.failure else {
            return Err(reject(conflict(
                "id_number",
                format!(
                    "the application has not failed (it is at {}): nothing to roll back",
                    app.state.step.as_str()
                ),
            )));
        };
        let target = domain::rollback_target(failure);
        app.state.failure = None;
        app.state.reason = None;
        app.state.correction_via = None;
        app.state.step = target;
        if let Some(n) = corrected {
            app.name = n;
        }
        let note = format!("{} → {}", failure.as_str(), target.as_str());
        let mut change = match target {
            Step::PhotoApproved => {
                app.attempt += 1;
                let mut ch = Change::new(app);
                ch.events.push(("application-rolled-back", Some(note)));
                ch.events.push(("bank-account-requested", None));
                ch
            }
            Step::BankAccountOpened => {
                app.attempt += 1;
                app.card_number = None;
                app.tracking_number = None;
                app.state.branch = None;
                app.picked_up_by = None;
                let mut ch = Change::new(app);
                ch.events.push(("application-rolled-back", Some(note)));
                ch.events.push(("card-production-requested", None));
                ch
            }
            _ => {
                let mut ch = Change::new(app);
                ch.events.push(("application-rolled-back", Some(note)));
                ch
            }
        };
        change.app.state.loss = None;
        self.commit(tx, msg, &person, change).await
    }

    async fn pick_up(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::PickUpCard = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let docs = domain::documents("documents", &cmd.documents).map_err(reject)?;
        let by = domain::check_representative(
            &id,
            &cmd.representative.by,
            cmd.representative.id_number.as_deref(),
            &docs,
            today(msg.received_at),
        )
        .map_err(reject)?;
        let (mut app, person) = self.current(tx, &id).await?;
        expect_step(&app, Step::ArrivedAtBranch)?;
        if cmd.activate {
            if msg.envelope.channel != Some(Channel::Bank) {
                return Err(reject(invalid(
                    "activate",
                    "activation on pick-up is done at the bank (channel bank); otherwise activate-card later",
                )));
            }
            domain::check_activation(Place::Bank, by, &person.active).map_err(reject)?;
        }
        app.picked_up_by = Some(by.as_str().to_owned());
        app.state.step = Step::PickedUp;
        let mut change = Change::new(app);
        change
            .events
            .push(("card-picked-up", Some(format!("by {}", by.as_str()))));
        if cmd.activate {
            change.app.state.step = Step::Activated;
            change.events.push(("card-activated", Some("bank".into())));
        }
        self.commit(tx, msg, &person, change).await
    }

    async fn activate(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ActivateCard = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let place = Place::parse(&cmd.place)
            .ok_or_else(|| reject(invalid("place", "expected bank, agency or hospital")))?;
        let docs = domain::documents("documents", &cmd.documents).map_err(reject)?;
        let by = domain::check_representative(
            &id,
            &cmd.representative.by,
            cmd.representative.id_number.as_deref(),
            &docs,
            today(msg.received_at),
        )
        .map_err(reject)?;
        let (mut app, person) = self.current(tx, &id).await?;
        expect_step(&app, Step::PickedUp)?;
        domain::check_activation(place, by, &person.active).map_err(reject)?;
        app.state.step = Step::Activated;
        let mut change = Change::new(app);
        change.events.push((
            "card-activated",
            Some(format!("{} by {}", place.as_str(), by.as_str())),
        ));
        self.commit(tx, msg, &person, change).await
    }

    async fn issue_instantly(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::IssueInstantly = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let docs = domain::documents("documents", &cmd.documents).map_err(reject)?;
        let by = By::parse(&cmd.representative.by)
            .ok_or_else(|| reject(invalid("representative.by", "expected self, agent or guardian")))?;
        domain::check_instant(msg.envelope.channel, by, &docs).map_err(reject)?;
        domain::check_representative(
            &id,
            &cmd.representative.by,
            cmd.representative.id_number.as_deref(),
            &docs,
            today(msg.received_at),
        )
        .map_err(reject)?;
        let bank = domain::text("bank", &cmd.bank, 64).map_err(reject)?;
        let branch = domain::text("branch", &cmd.branch, 100).map_err(reject)?;
        let account = domain::text("financial_account", &cmd.financial_account, 40).map_err(reject)?;
        let number = domain::text("card_number", &cmd.card_number, 32).map_err(reject)?;
        let person = self.eligible(tx, &id).await?;
        let mut superseded = None;
        if let Some(mut open) = store::open_app(tx, id.as_str()).await? {
            if open.state.step >= Step::PickedUp && open.state.failure.is_none() && open.state.loss.is_none()
            {
                return Err(reject(conflict(
                    "id_number",
                    format!("{id} already holds a card: instant issuance is for a patient without one"),
                )));
            }
            // The pending (or failed, or lost) card is superseded by the one made now.
            open.state.closed = Some(Closed::Replaced);
            open.state.failure = None;
            open.last_step_at = msg.received_at;
            store::save(tx, &open).await?;
            store::add_step(
                tx,
                open.application_id,
                "superseded",
                Some("instant issuance"),
                &msg.envelope,
                msg.received_at,
            )
            .await?;
            superseded = Some(open.application_id.to_string());
        }
        let name = match cmd.name.as_deref().or(person.name.as_deref()) {
            Some(n) => domain::text("name", n, 64).map_err(reject)?,
            None => {
                return Err(reject(invalid(
                    "name",
                    "required: enrollment gave no name for this person",
                )));
            }
        };
        let mut app = App {
            application_id: Uuid::now_v7(),
            id_number: id.as_str().to_owned(),
            state: CardState {
                kind: Kind::Instant,
                step: Step::InfoCollected,
                failure: None,
                reason: None,
                correction_via: None,
                loss: None,
                closed: None,
                branch: Some(branch.clone()),
            },
            name,
            bank,
            financial_account: Some(account),
            card_number: Some(number),
            tracking_number: None,
            picked_up_by: Some(by.as_str().to_owned()),
            attempt: 1,
            last_step_at: msg.received_at,
        };
        // Every step happens at the branch, now; shipping is skipped.
        app.state.step = if cmd.activate {
            Step::Activated
        } else {
            Step::PickedUp
        };
        let mut change = Change::new(app);
        change
            .events
            .push(("card-applied", superseded.map(|s| format!("supersedes {s}"))));
        change
            .events
            .push(("photo-approved", Some("at the branch".into())));
        change.events.push(("bank-account-opened", None));
        change.events.push(("card-produced", Some(branch)));
        change
            .events
            .push(("card-picked-up", Some(format!("by {}", by.as_str()))));
        if cmd.activate {
            change.events.push(("card-activated", Some("bank".into())));
        }
        self.commit(tx, msg, &person, change).await
    }

    async fn report_loss(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ReportLoss = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let kind =
            Loss::parse(&cmd.kind).ok_or_else(|| reject(invalid("kind", "expected temporary or formal")))?;
        let (mut app, person) = self.current(tx, &id).await?;
        if app.state.step < Step::PickedUp {
            return Err(reject(not_eligible(
                "id_number",
                format!(
                    "{id} has not picked up a card yet (the application is at {}): nothing to report lost",
                    app.state.step.as_str()
                ),
            )));
        }
        match (app.state.loss, kind) {
            (None, _) | (Some(Loss::Temporary), Loss::Formal) => {}
            (Some(now), _) => {
                return Err(reject(conflict(
                    "kind",
                    format!("the card is already reported lost ({})", now.as_str()),
                )));
            }
        }
        app.state.loss = Some(kind);
        let mut change = Change::new(app);
        change
            .events
            .push(("card-loss-reported", Some(kind.as_str().to_owned())));
        self.commit(tx, msg, &person, change).await
    }

    async fn lift_loss(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::LiftLoss = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let (mut app, person) = self.current(tx, &id).await?;
        match app.state.loss {
            Some(Loss::Temporary) => {}
            Some(Loss::Formal) => {
                return Err(reject(not_eligible(
                    "id_number",
                    "a formal loss report is not lifted: the card is replaced (replace-card)",
                )));
            }
            None => {
                return Err(reject(conflict("id_number", "the card is not reported lost")));
            }
        }
        app.state.loss = None;
        let mut change = Change::new(app);
        change.events.push(("card-loss-lifted", None));
        self.commit(tx, msg, &person, change).await
    }

    /// A new application on the same financial account, from card production on; the old
    /// one is closed.
    async fn successor(
        &self,
        tx: &Transaction<'_>,
        msg: &Incoming,
        mut old: App,
        closed: Closed,
        kind: Kind,
        name: Option<String>,
    ) -> Result<App, HandlerError> {
        old.state.closed = Some(closed);
        old.last_step_at = msg.received_at;
        store::save(tx, &old).await?;
        store::add_step(
            tx,
            old.application_id,
            closed.as_str(),
            None,
            &msg.envelope,
            msg.received_at,
        )
        .await?;
        Ok(App {
            application_id: Uuid::now_v7(),
            id_number: old.id_number.clone(),
            state: CardState {
                kind,
                step: Step::BankAccountOpened,
                failure: None,
                reason: None,
                correction_via: None,
                loss: None,
                closed: None,
                branch: None,
            },
            name: name.unwrap_or(old.name),
            bank: old.bank,
            financial_account: old.financial_account,
            card_number: None,
            tracking_number: None,
            picked_up_by: None,
            attempt: 1,
            last_step_at: msg.received_at,
        })
    }

    async fn replace_card(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::ReplaceCard = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let (app, person) = self.current(tx, &id).await?;
        match app.state.loss {
            Some(Loss::Formal) => {}
            Some(Loss::Temporary) => {
                return Err(reject(not_eligible(
                    "id_number",
                    "the card is only temporarily reported lost: report the loss formally (正式挂失) before a replacement",
                )));
            }
            None => {
                return Err(reject(not_eligible(
                    "id_number",
                    "a replacement (补卡) follows a formal loss report; a damaged card or changed data is renewed (renew-card)",
                )));
            }
        }
        let old = app.application_id;
        let new = self
            .successor(tx, msg, app, Closed::Replaced, Kind::Replacement, None)
            .await?;
        let mut change = Change::new(new);
        change
            .events
            .push(("card-replaced", Some(format!("replaces {old}"))));
        change.events.push(("card-production-requested", None));
        self.commit(tx, msg, &person, change).await
    }

    async fn renew_card(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::RenewCard = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        if !matches!(cmd.reason.as_str(), "damage" | "data-change") {
            return Err(reject(invalid("reason", "expected damage or data-change")));
        }
        let name = cmd
            .name
            .as_deref()
            .map(|n| domain::text("name", n, 64))
            .transpose()
            .map_err(reject)?;
        if name.is_some() && cmd.reason != "data-change" {
            return Err(reject(invalid(
                "name",
                "a new name is given only for a data change",
            )));
        }
        let (app, person) = self.current(tx, &id).await?;
        if app.state.loss.is_some() {
            return Err(reject(not_eligible(
                "id_number",
                "the card is reported lost: a lost card is replaced (replace-card), not renewed",
            )));
        }
        if app.state.step < Step::PickedUp || app.state.failure.is_some() {
            return Err(reject(not_eligible(
                "id_number",
                format!(
                    "no card in hand to renew (the application is at {}{})",
                    app.state.step.as_str(),
                    if app.state.failure.is_some() {
                        ", failed"
                    } else {
                        ""
                    }
                ),
            )));
        }
        let old = app.application_id;
        let new = self
            .successor(tx, msg, app, Closed::Renewed, Kind::Renewal, name)
            .await?;
        let mut change = Change::new(new);
        change
            .events
            .push(("card-renewed", Some(format!("{}; renews {old}", cmd.reason))));
        change.events.push(("card-production-requested", None));
        self.commit(tx, msg, &person, change).await
    }

    async fn get_status(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let cmd: c::GetCardStatus = msg.decode()?;
        let id = domain::id_number("id_number", &cmd.id_number).map_err(reject)?;
        let app = store::latest_app(tx, id.as_str())
            .await?
            .ok_or_else(|| reject(not_found("id_number", format!("{id} has no card application"))))?;
        let v = view(tx, &app).await?;
        Ok(Handled {
            result: Some(serde_json::to_value(&v).expect("results serialise")),
            ..Default::default()
        })
    }
}

fn not_failed_or_lost(app: &App) -> Result<(), HandlerError> {
    if let Some(f) = app.state.failure {
        return Err(reject(conflict(
            "id_number",
            format!(
                "the application has failed ({}): the agency rolls it back first",
                f.as_str()
            ),
        )));
    }
    if let Some(l) = app.state.loss {
        return Err(reject(conflict(
            "id_number",
            format!("the card is reported lost ({})", l.as_str()),
        )));
    }
    Ok(())
}

/// The application must be at `step`, not failed, not lost.
fn expect_step(app: &App, step: Step) -> Result<(), HandlerError> {
    not_failed_or_lost(app)?;
    if app.state.step != step {
        return Err(reject(conflict(
            "id_number",
            format!(
                "the application is at {}, not {}",
                app.state.step.as_str(),
                step.as_str()
            ),
        )));
    }
    Ok(())
}

async fn view(tx: &Transaction<'_>, app: &App) -> Result<c::CardStatusView, HandlerError> {
    let shown = app.state.shown();
    Ok(c::CardStatusView {
        id_number: app.id_number.clone(),
        application_id: app.application_id.to_string(),
        kind: app.state.kind.as_str().to_owned(),
        step: app.state.step.as_str().to_owned(),
        state: shown.state.to_owned(),
        colour: shown.colour.to_owned(),
        text: shown.text,
        action: shown.action,
        last_step_on: today(app.last_step_at),
        failure: app.state.failure.map(|f| f.as_str().to_owned()),
        reason: app.state.reason.clone(),
        bank: app.bank.clone(),
        financial_account: app.financial_account.clone(),
        card_number: app.card_number.clone(),
        branch: app.state.branch.clone(),
        steps: store::steps(tx, app.application_id).await?,
    })
}

/// A step that failed: its reason (required, 200 characters at most), the failure recorded
/// on the application, and the one event that says so.
fn failed(
    mut app: App,
    failure: Failure,
    reason: Option<&str>,
    needs: &str,
    event: &'static str,
) -> Result<Change, HandlerError> {
    let reason =
        domain::text("reason", reason.unwrap_or(""), 200).map_err(|_| reject(invalid("reason", needs)))?;
    app.state.failure = Some(failure);
    app.state.reason = Some(reason);
    let mut change = Change::new(app);
    change.events.push((event, None));
    Ok(change)
}
