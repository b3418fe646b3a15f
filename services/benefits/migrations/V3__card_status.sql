-- What benefits knows of each person's social security card, from card-issuance's events only
-- (issue 11 §3): inpatient registration needs an activated card, except while the bank account
-- or the card is still being made, when the hospital admits by the old procedure (Baotou).
create table card_status (
    id_number      text primary key,
    application_id text not null,
    state          text not null,
    in_production  boolean not null,
    step           text not null,
    action         text not null default '',
    updated_at     timestamptz not null default now()
);
