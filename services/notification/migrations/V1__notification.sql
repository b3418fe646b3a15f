-- The notification service's schema (DOMAIN.md §7). Contacts are a projection of
-- enrollment's events; every SMS is a row from the moment it is decided, so a restart loses
-- nothing and a redelivered event adds nothing (unique source, recipient, template).

create table contacts (
    -- person:<id_number> or employer:<credit_code>
    recipient text primary key,
    -- enrollment's person id (payers and settlements name persons by it)
    person_id text,
    name text,
    phone text,
    -- the lines the person or employer is enrolled on
    lines text[] not null default '{}',
    -- the message id (UUIDv7, time-ordered) of the event that set the phone: an older
    -- event arriving late does not overwrite a newer number
    contact_version uuid
);
create index contacts_person on contacts (person_id);

create table opt_outs (
    id_number text not null,
    category text not null,
    at timestamptz not null default now(),
    primary key (id_number, category)
);

create table notifications (
    notification_id uuid primary key,
    recipient text not null,
    phone text not null,
    line text not null,
    category text not null check (category in ('service', 'reminder', 'announcement')),
    template text not null,
    template_version int not null,
    text text not null,
    -- the event's message id, reminder:<assessment>, or announcement:<order>:<phase>
    source text not null,
    state text not null default 'queued'
        check (state in ('queued', 'sending', 'submitted', 'delivered', 'failed', 'expired', 'opted-out', 'cancelled')),
    parts int not null default 0,
    attempts int not null default 0,
    -- not sent before this instant (reminders: the reminder day, outside quiet hours)
    not_before timestamptz not null,
    claimed_at timestamptz,
    created_at timestamptz not null default now(),
    submitted_at timestamptz,
    delivered_at timestamptz,
    reason text,
    unique (source, recipient, template)
);
create index notifications_due on notifications (not_before) where state = 'queued';
create index notifications_sending on notifications (claimed_at) where state = 'sending';
create index notifications_recipient on notifications (recipient, created_at desc);

-- One row per SMS part the SMSC accepted: receipts come per part.
create table sms_parts (
    smsc_id text primary key,
    notification_id uuid not null references notifications,
    state text not null default 'submitted'
);
create index sms_parts_notification on sms_parts (notification_id);

-- The phases of a freeze order's announcement; the bulk send walks the contacts in
-- recipient order from `cursor`, queuing a batch per transaction, so a restart resumes
-- where it stopped.
create table announcements (
    order_id text not null,
    phase text not null check (phase in ('before', 'start', 'end')),
    due_at timestamptz not null,
    lines text[] not null,
    text text not null,
    cursor text not null default '',
    queued bigint not null default 0,
    complete boolean not null default false,
    primary key (order_id, phase)
);
