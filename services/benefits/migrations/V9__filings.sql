-- Filings 备案 that change how settlements and claims settle (issue 10 §1): cross-region care
-- 异地就医, outpatient chronic and special disease 门诊慢特病, special drugs 特治特药.
-- Every figure the notices do not give is marked PLACEHOLDER in its `source`.

-- The region this service insures (its persons are insured here), and every institution's
-- region: care at an institution of another region is care elsewhere.
create table home_region (
    region text primary key check (region ~ '^[0-9]{6}$'),
    name   text not null,
    single boolean not null default true unique check (single)
);
insert into home_region (region, name) values ('420100', '武汉市 Wuhan');

alter table institutions add column region text;
update institutions set region = '420100';
alter table institutions alter column region set not null,
                         add constraint institutions_region check (region ~ '^[0-9]{6}$');
insert into institutions (fixmedins_code, fixmedins_name, hosp_lv, region) values
    ('H37010000001', 'placeholder tertiary hospital in Jinan 济南三级医院', '3', '370100'),
    ('H37010000002', 'placeholder secondary hospital in Jinan 济南二级医院', '2', '370100'),
    ('P37010000001', 'placeholder designated pharmacy in Jinan 济南定点药店', '1', '370100');

-- The terms of filings, per insurance type (policy data).
create table filing_terms (
    insutype                text primary key check (insutype in ('310', '390')),
    -- Care elsewhere without a filing valid on the day: real-time settlement refused (false)
    -- with the filing to make, or settled at the reduced ratio (true). Either way a claim in
    -- cash at the agency (submit-claim) is reimbursed at the ordinary ratio less this many
    -- points.
    unfiled_realtime        boolean not null,
    unfiled_ratio_reduction numeric(6, 4) not null check (unfiled_ratio_reduction between 0 and 1),
    -- 补登记: a cross-region filing may start in the past, inside a settlement stop, when made
    -- within this many days after the stop ended.
    late_filing_days        integer not null check (late_filing_days >= 0),
    -- 门诊慢特病: the outpatient deductible of its own per calendar year and the ratio.
    chronic_deductible      numeric(14, 2) not null check (chronic_deductible >= 0),
    chronic_ratio           numeric(6, 4) not null check (chronic_ratio between 0 and 1),
    -- Up to this many days of drugs per visit (Jinan 2020: up to 3 months).
    chronic_max_drug_days   integer not null check (chronic_max_drug_days > 0),
    -- 特治特药: the pooled fund's ratio on a filed drug's lines at the filed institution.
    special_drug_ratio      numeric(6, 4) not null check (special_drug_ratio between 0 and 1),
    source                  text not null
);
insert into filing_terms values
    ('310', false, 0.1000, 90, 100.00, 0.8000, 90, 0.7000,
     'Jinan 2020 (DOMAIN.md §5): 3 months of drugs; PLACEHOLDER: unfiled-care reduction, '
     'late-filing window, chronic deductible and ratio, special-drug ratio'),
    ('390', false, 0.1000, 90, 100.00, 0.6000, 90, 0.6000,
     'Jinan 2020 (DOMAIN.md §5): 3 months of drugs; PLACEHOLDER: unfiled-care reduction, '
     'late-filing window, chronic deductible and ratio, special-drug ratio');

-- Cross-region care with a filing: the ordinary ratio of the institution's level less this
-- many points, per filing type. Jinan 2020: no reduced ratio for care elsewhere.
create table cross_region_terms (
    filing_type     text primary key check (filing_type in
                        ('long-term-residence', 'work-posting', 'retirement-elsewhere', 'referral')),
    name            text not null,
    ratio_reduction numeric(6, 4) not null check (ratio_reduction between 0 and 1),
    source          text not null
);
insert into cross_region_terms values
    ('long-term-residence', '异地长期居住', 0.0000, 'Jinan 2020 (DOMAIN.md §5): no reduced ratio for care elsewhere'),
    ('work-posting', '常驻异地工作', 0.0000, 'Jinan 2020 (DOMAIN.md §5): no reduced ratio for care elsewhere'),
    ('retirement-elsewhere', '异地安置', 0.0000, 'Jinan 2020 (DOMAIN.md §5): no reduced ratio for care elsewhere'),
    ('referral', '转外就医', 0.0000, 'Jinan 2020 (DOMAIN.md §5): no reduced ratio for care elsewhere');

-- The outpatient chronic and special diseases 门诊慢特病 (ICD-10 code or prefix the visit's
-- diagnosis starts with). `full_review`: excluded from the simple procedure (Jinan 2020:
-- hepatitis, cirrhosis, tuberculosis, mental disorders, and hypertension, diabetes, coronary
-- and cerebrovascular disease without a stent). The list itself is a PLACEHOLDER selection.
create table chronic_diseases (
    disease_code text primary key,
    name         text not null,
    full_review  boolean not null,
    source       text not null
);
insert into chronic_diseases values
    ('I10', '高血压 hypertension', true, 'Jinan 2020: full review'),
    ('E11', '糖尿病 diabetes (type 2)', true, 'Jinan 2020: full review'),
    ('I25', '冠心病 coronary heart disease (no stent)', true, 'Jinan 2020: full review'),
    ('I63', '脑血管病 cerebrovascular disease (no stent)', true, 'Jinan 2020: full review'),
    ('B18', '慢性病毒性肝炎 chronic viral hepatitis', true, 'Jinan 2020: full review'),
    ('K74', '肝硬化 cirrhosis', true, 'Jinan 2020: full review'),
    ('A15', '结核病 tuberculosis', true, 'Jinan 2020: full review'),
    ('F20', '精神障碍 mental disorder (schizophrenia)', true, 'Jinan 2020: full review'),
    ('Z95.5', '冠心病支架术后 coronary disease with a stent', false, 'PLACEHOLDER: simple procedure'),
    ('N18', '慢性肾功能衰竭 chronic kidney failure', false, 'PLACEHOLDER: simple procedure'),
    ('C', '恶性肿瘤门诊治疗 malignant tumour, outpatient treatment', false, 'PLACEHOLDER: simple procedure'),
    ('Z94', '器官移植抗排异 organ transplant, anti-rejection', false, 'PLACEHOLDER: simple procedure');

-- How many days of treatment one unit of a drug gives (the 3-month limit counts cnt × this);
-- null for what is not a drug. New placeholder drugs for the filings.
alter table catalogue add column days_per_unit numeric(8, 2) check (days_per_unit > 0);
insert into catalogue (med_list_codg, name, chrgitm_lv, selfpay_prop, price_limit, in_scope, days_per_unit) values
    ('XD01', 'chronic-disease drug, a box of 30 days 甲类 (placeholder)', '1', 0.0000, null, true, 30),
    ('XT01', 'special drug 特药 (placeholder)', '1', 0.0000, null, true, 30);

create table filings (
    filing_id      uuid primary key,
    person_id      uuid not null references persons (person_id),
    kind           text not null check (kind in ('cross-region', 'chronic-disease', 'special-drug')),
    filing_type    text,
    region         text,
    disease_code   text references chronic_diseases (disease_code),
    med_list_codg  text,
    fixmedins_code text references institutions (fixmedins_code),
    valid_from     date not null,
    valid_to       date,
    procedure      text not null check (procedure in ('simple', 'full-review')),
    status         text not null check (status in ('submitted', 'approved', 'rejected', 'revoked')),
    status_reason  text,
    reviewer       text,
    late           boolean not null default false,
    documents      jsonb not null default '[]',
    filed_at       timestamptz not null,
    updated_at     timestamptz not null,
    check (valid_to is null or valid_to >= valid_from),
    check (kind <> 'cross-region' or (filing_type is not null and region is not null)),
    check (kind <> 'chronic-disease' or disease_code is not null),
    check (kind <> 'special-drug' or (med_list_codg is not null and fixmedins_code is not null))
);
create index filings_of_person on filings (person_id, kind) where status = 'approved';

-- What a settlement's terms came from: `ordinary` or `chronic-disease` (whose deductible is
-- its own, counted apart from the ordinary outpatient one), and the filings that changed them.
alter table settlements add column terms text not null default 'ordinary'
                            check (terms in ('ordinary', 'chronic-disease')),
                        add column filings uuid[] not null default '{}';
alter table claims add column filings uuid[] not null default '{}',
                   add column unfiled_elsewhere boolean not null default false;
