-- Policy overrides (issue 10 §4): a special rule that decides a settlement instead of the
-- ordinary policy, with a scope (diagnosis codes, dates, persons) and a priority; every
-- settlement says which rule decided it (`rule`).
--
-- Jinan 2020 (DOMAIN.md §5): confirmed and suspected COVID-19 patients, insured or not, are
-- paid in full by the fund and public finance, with no reimbursement procedure. The fund pays
-- what the ordinary policy gives an insured patient; public finance pays the rest (NHSA
-- `oth_pay`, inside `fund_pay_sumamt`), so the patient pays nothing.

create table policy_overrides (
    override_id       text primary key,
    priority          integer not null,
    name              text not null,
    source            text not null,
    -- ICD-10 codes or prefixes the visit's diagnosis must start with; empty: any diagnosis.
    diagnosis_codes   text[] not null default '{}',
    -- Judged on the day care began.
    effective_from    date not null,
    effective_to      date,
    -- ID numbers the override is limited to; empty: everyone.
    id_numbers        text[] not null default '{}',
    -- A patient not covered on the day (registered self-paid) is covered by it too.
    covers_uninsured  boolean not null,
    -- Public finance pays what the fund does not: the patient pays nothing.
    finance_pays_rest boolean not null,
    check (effective_to is null or effective_to >= effective_from)
);

-- The dates are placeholders: DOMAIN.md names the rule and the year but no start or end
-- date; 2020-01-20 is when COVID-19 became a notifiable class B disease managed as class A
-- nationally, and the end is left open. U07.1 confirmed, U07.2 clinically diagnosed /
-- suspected (ICD-10 emergency codes).
insert into policy_overrides (override_id, priority, name, source, diagnosis_codes, effective_from,
    effective_to, covers_uninsured, finance_pays_rest)
values ('jinan-2020-covid-19', 100,
        '新冠肺炎确诊和疑似患者医疗费用由医保基金和财政全额保障（济南2020）',
        'Jinan 2020 notice, DOMAIN.md §5 (dates: placeholder)',
        '{U07.1,U07.2}', '2020-01-20', null, true, true);

alter table visits add column dise_codg text;

alter table settlements add column oth_pay numeric(14, 2) not null default 0,
                        add column rule text not null default '';

-- The fund's total now includes what public finance pays under an override.
do $$
declare c text;
begin
    select conname into c from pg_constraint
    where conrelid = 'settlements'::regclass and contype = 'c'
      and pg_get_constraintdef(oid) like '%hifmi_pay%' and pg_get_constraintdef(oid) not like '%medfee_sumamt%';
    execute format('alter table settlements drop constraint %I', c);
end $$;
alter table settlements add constraint settlements_fund_parts
    check (fund_pay_sumamt = hifp_pay + hifob_pay + hifmi_pay + oth_pay);
