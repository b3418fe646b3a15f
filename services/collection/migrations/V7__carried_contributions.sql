-- What a participation certificate carried in (issue 8 §1, the Jinan transfer-in flow): the
-- person is enrolled and pays here first, then the certificate from the other region is
-- accepted and the history it carries is merged into contribution-history. One row per
-- certificate (a redelivered transferred-in event changes nothing).
create table carried_contributions (
    certificate_id          uuid primary key,
    person_id               uuid not null references persons (person_id),
    line                    text not null,
    insurance_types         text[] not null,
    from_region             text not null,
    effective_month         date not null,
    -- Months credited in the issuing region; null when the certificate does not say.
    months                  integer check (months is null or months >= 0),
    pension_account_balance numeric(14, 2),
    recorded_at             timestamptz not null default now()
);
create index carried_by_person on carried_contributions (person_id, line);
