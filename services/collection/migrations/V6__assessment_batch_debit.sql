-- Whether a person's assessment is collected by bank batch debit (a flexible worker with a
-- signed agreement in force for the month, decided when the assessment is created): the
-- contribution-assessed event says so, so the "due soon" reminder can ask for the funds on
-- the card before the debit day instead of asking for a payment.
alter table assessments add column batch_debit boolean not null default false;
