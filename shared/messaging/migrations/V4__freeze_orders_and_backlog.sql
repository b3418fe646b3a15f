-- Freezing a line (DESIGN.md §5). The service's own schema is the source of truth for the
-- orders: every replica reads them at start and on change, so a restart during a freeze
-- comes up frozen.
create table freeze_orders (
    id text primary key,
    -- The order as sent (contracts::freeze::FreezeOrder); `extend` rewrites its ends_at.
    body jsonb not null,
    received_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- `lift`: the order ended at this instant of the service's clock.
    lifted_at timestamptz,
    -- `cancel`: the order never applies and moves no deadline.
    cancelled_at timestamptz
);

-- freeze-started / freeze-ended are published once per order and line, whatever the number
-- of replicas: the row is the claim, written with the outbox row in one transaction.
create table freeze_transitions (
    order_id text not null,
    line text not null,
    what text not null check (what in ('started', 'ended')),
    at timestamptz not null default now(),
    primary key (order_id, line, what)
);

-- The backlog (收件): commands taken in during an intake-only freeze, stored in the same
-- transaction as their inbox row, processed at thaw in arrival order (seq).
create table backlog (
    seq bigserial primary key,
    receipt_id uuid not null unique,
    line text not null,
    queue text not null,
    order_id text not null,
    message_id uuid not null unique,
    message_type text not null,
    routing_key text not null,
    reply_to text,
    correlation_id text,
    app_id text,
    headers jsonb not null,
    body bytea not null,
    -- On the service's clock: the request is judged as of this time at thaw.
    received_at timestamptz not null,
    resumes_at timestamptz,
    processed_at timestamptz,
    -- The final reply; `failed` when it could not be processed (an INTERNAL reply).
    reply jsonb,
    failed boolean not null default false
);
create index backlog_pending on backlog (line, seq) where processed_at is null;
