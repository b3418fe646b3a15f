-- Card issuance: who may apply (a projection of enrollment's events, never enrollment's
-- tables), the applications with their lifecycle, and every step they went through.

create table persons (
    id_number  text        primary key,
    person_id  text        not null,
    name       text,
    category   text,
    updated_at timestamptz not null default now()
);

-- The person's insurance types as enrollment last announced them.
create table person_enrollments (
    id_number      text        not null references persons (id_number),
    insurance_type text        not null,
    status         text        not null check (status in ('active', 'suspended', 'terminated')),
    reason         text,
    updated_at     timestamptz not null default now(),
    primary key (id_number, insurance_type)
);

-- One row per application: the card it makes, and its state. A replacement, renewal or
-- instant issuance is a new row; the row it supersedes is closed.
create table applications (
    application_id    uuid        primary key,
    id_number         text        not null references persons (id_number),
    kind              text        not null check (kind in ('first', 'instant', 'replacement', 'renewal')),
    step              text        not null check (step in ('info-collected', 'photo-approved',
                          'bank-account-opened', 'card-produced', 'shipped', 'arrived-at-branch',
                          'picked-up', 'activated')),
    -- Set while the application is stopped; cleared by the agency's rollback.
    failure           text        check (failure in ('photo-rejected', 'bank-account-failed',
                          'production-failed', 'card-data-error')),
    reason            text,
    correction_via    text        check (correction_via in ('agency', 'hospital')),
    loss              text        check (loss in ('temporary', 'formal')),
    closed            text        check (closed in ('replaced', 'renewed', 'cancelled')),
    name              text        not null,
    bank              text        not null,
    financial_account text,
    card_number       text,
    branch            text,
    tracking_number   text,
    picked_up_by      text,
    -- Requests to the bank for the current step: 1, then 2 after a rollback, ...
    attempt           integer     not null default 1,
    last_step_at      timestamptz not null,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    -- A failure is only ever on an open application.
    check (failure is null or closed is null)
);
-- At most one current (not closed) application per person; cancelled ones stay visible.
create unique index applications_one_open on applications (id_number) where closed is null;
create index applications_by_person on applications (id_number, created_at desc);
-- Card numbers are unique across cards ever made.
create unique index applications_card_number on applications (card_number) where card_number is not null;

-- Every step, failure, rollback and loss report (append-only).
create table steps (
    seq            bigserial   primary key,
    application_id uuid        not null references applications (application_id),
    step           text        not null,
    note           text,
    channel        text,
    operator       text,
    message_id     uuid        not null,
    at             timestamptz not null
);
create index steps_by_application on steps (application_id, seq);

create function steps_are_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'steps are append-only: % is not allowed', tg_op;
end
$$;

create trigger steps_append_only before update or delete on steps
    for each row execute function steps_are_append_only();
