-- Transactional outbox: a service inserts the messages it will send in the same transaction
-- as its business change. The relay publishes them in id order and marks them published only
-- after the broker's confirm.
create table outbox (
    id            bigserial primary key,
    message_id    uuid        not null unique,
    exchange      text        not null,
    routing_key   text        not null,
    message_type  text        not null,
    correlation_id text,
    -- AMQP headers as a flat string map (ce-*, traceparent, x-channel, x-operator, ...).
    headers       jsonb       not null default '{}'::jsonb,
    body          jsonb       not null,
    created_at    timestamptz not null default now(),
    published_at  timestamptz,
    attempts      integer     not null default 0,
    last_error    text
);
-- The relay only ever looks at what is not yet published.
create index outbox_unpublished on outbox (id) where published_at is null;

-- Inbox: one row per consumed message id, inserted in the handler's transaction. A second
-- delivery of the same id finds the row and is acknowledged without effect; for a command the
-- stored reply is sent again.
create table inbox (
    message_id   uuid        primary key,
    queue        text        not null,
    message_type text        not null,
    received_at  timestamptz not null default now(),
    reply        jsonb
);
