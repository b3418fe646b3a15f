-- One role per service, owning its own schema and with no rights anywhere else (DESIGN.md §6,
-- issue 13 §1). Run once by the postgres superuser on a new cluster (10-roles.sh passes the
-- passwords as psql variables); Kubernetes does the same through CloudNativePG managed roles.
\set ON_ERROR_STOP on

create database insurance;
\connect insurance

-- Nobody but the owner and the roles granted below may connect or create anything.
revoke all on database insurance from public;
revoke all on schema public from public;

-- A service role: login, no inheritance, no superuser, no createdb/createrole, no replication.
create role enrollment login noinherit password :'enrollment_password';
create role collection login noinherit password :'collection_password';
create role benefits login noinherit password :'benefits_password';
create role card_issuance login noinherit password :'card_issuance_password';
create role notification login noinherit password :'notification_password';

-- Each owns exactly one schema: its migrations create everything inside it, history table
-- included.
create schema enrollment authorization enrollment;
create schema collection authorization collection;
create schema benefits authorization benefits;
create schema card authorization card_issuance;
create schema notification authorization notification;

-- connect only: start-up looks for its schema before it would create one (shared/platform
-- db.rs), so no role may add schemas (tests/tests/least_privilege.rs).
grant connect on database insurance
    to enrollment, collection, benefits, card_issuance, notification;
