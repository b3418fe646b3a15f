-- Enrollment: persons, employers and enrollments per insurance type. Current state lives in
-- the tables below; every change is also a new row in history (append-only).

create table employers (
    employer_id   uuid        primary key,
    credit_code   text        not null unique,
    name          text        not null,
    contact_name  text        not null,
    contact_phone text        not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- Since the split of the lines an employer registers, and declares staff, on each line on
-- its own: one row per line it registered on.
create table employer_lines (
    credit_code   text        not null references employers (credit_code),
    line          text        not null check (line in ('medical', 'social')),
    registered_at timestamptz not null default now(),
    primary key (credit_code, line)
);

create table persons (
    person_id    uuid        primary key,
    id_number    text        not null unique,
    name         text        not null,
    phone        text        not null,
    category     text        not null check (category in ('employee', 'flexible', 'resident', 'retiree')),
    bank_account text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

-- One row per person and insurance type: the current status. Earlier states are in history.
create table enrollments (
    person_id            uuid        not null references persons (person_id),
    insurance_type       text        not null,
    line                 text        not null check (line in ('medical', 'social')),
    status               text        not null check (status in ('active', 'suspended', 'terminated')),
    effective_month      text        not null check (effective_month ~ '^[0-9]{4}-[0-9]{2}$'),
    employer_credit_code text        references employers (credit_code),
    status_reason        text,
    updated_at           timestamptz not null default now(),
    primary key (person_id, insurance_type)
);
create index enrollments_by_employer on enrollments (employer_credit_code, insurance_type) where status = 'active';

-- Participation certificates (参保凭证): issued on transfer-out, accepted on transfer-in. The
-- same id may appear once in each direction (issued elsewhere, accepted here).
create table certificates (
    certificate_id uuid        not null,
    direction      text        not null check (direction in ('out', 'in')),
    person_id      uuid        not null references persons (person_id),
    certificate    jsonb       not null,
    created_at     timestamptz not null default now(),
    primary key (certificate_id, direction)
);

-- Every version of a person or employer record: who, when, through which channel, why.
create table history (
    entity     text        not null check (entity in ('person', 'employer')),
    entity_id  uuid        not null,
    version    integer     not null,
    change     text        not null,
    snapshot   jsonb       not null,
    reason     text,
    channel    text,
    operator   text,
    message_id uuid        not null,
    changed_at timestamptz not null default now(),
    primary key (entity, entity_id, version)
);

create function history_is_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'history is append-only: % is not allowed', tg_op;
end
$$;

create trigger history_append_only before update or delete on history
    for each row execute function history_is_append_only();
