-- Interim settlement 中途结算 (issue 10 §3): an inpatient still in hospital before a settlement
-- stop (Wuhan, 2021-12-22) settles what was uploaded so far; the stay's remaining fees are
-- re-entered 补录 and settled after the restart, with no second deductible. A visit may so
-- have several standing settlements: any number of interim ones, at most one final one.
alter table settlements add column mid_setl boolean not null default false;

drop index settlements_standing;
create unique index settlements_standing on settlements (mdtrt_id) where status = 'settled' and not mid_setl;
create index settlements_of_stay on settlements (mdtrt_id) where status = 'settled';
