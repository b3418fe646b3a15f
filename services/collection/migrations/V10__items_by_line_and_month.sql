-- assessment_items partitioned by line, then by month (issue 8 §2). A month's first
-- assessment writes all its items at once (two million for a million persons): into a table
-- of their own, whose indexes are then built in one pass when it is attached as the month's
-- partition, instead of maintained item by item (BENCHMARKS.md, 2026-12-08: the same two
-- million rows took 3.1 s into a bare table, 9.5 s and 11.5 s with one of the two indexes
-- each, and building both afterwards 3.3 s). Later runs of the month (adjustments) insert
-- through the parent as before. Each line has a default partition, so that no row is ever
-- refused for want of one.
alter table assessment_items rename to assessment_items_v9;
alter index assessment_items_by_assessment rename to assessment_items_v9_by_assessment;
alter index assessment_items_by_person rename to assessment_items_v9_by_person;

create table assessment_items (
    assessment_id  uuid not null,
    run_id         uuid not null,
    person_id      uuid not null,
    insurance_type text not null,
    share          text not null check (share in ('employer', 'employee', 'person', 'rounding')),
    base           numeric(12, 2),
    rate           numeric(8, 6) not null,
    amount         numeric(12, 2) not null,
    -- The item's assessment's line and month (what it is partitioned by).
    line           text not null,
    month          date not null check (month = date_trunc('month', month)::date)
) partition by list (line);
create index assessment_items_by_assessment on assessment_items (assessment_id);
create index assessment_items_by_person on assessment_items (person_id);

create table assessment_items_medical partition of assessment_items for values in ('medical')
    partition by range (month);
create table assessment_items_social partition of assessment_items for values in ('social')
    partition by range (month);
create table assessment_items_medical_default partition of assessment_items_medical default;
create table assessment_items_social_default partition of assessment_items_social default;

do $$
declare
    r record;
begin
    for r in select distinct a.line, a.month
             from assessment_items_v9 i join assessments a using (assessment_id)
             where a.line in ('medical', 'social')
    loop
        execute format('create table %I partition of %I for values from (%L) to (%L)',
                       'assessment_items_' || r.line || '_' || to_char(r.month, 'YYYY_MM'),
                       'assessment_items_' || r.line, r.month, (r.month + interval '1 month')::date);
    end loop;
end
$$;

insert into assessment_items
select i.assessment_id, i.run_id, i.person_id, i.insurance_type, i.share, i.base, i.rate, i.amount,
       a.line, a.month
from assessment_items_v9 i join assessments a using (assessment_id);

drop table assessment_items_v9;
