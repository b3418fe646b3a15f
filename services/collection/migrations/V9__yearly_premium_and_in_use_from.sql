-- Resident medical (城乡居民医疗) is a yearly premium, not a monthly rate (issue 8 §1): a fixed
-- amount per person and year, collected in the enrollment period before the coverage year
-- (集中缴费期). `collection_period` is {"opens": "MM-DD", "closes": "MM-DD"}: it opens in the
-- year before the coverage year and closes on the first `closes` day after that.
alter table policy_rules
    add column yearly_premium numeric(12, 2) check (yearly_premium >= 0),
    add column collection_period jsonb,
    add check ((yearly_premium is null) = (collection_period is null)),
    -- A rule whose figures are put in use only from a later month of its period (Hangzhou
    -- 2020: the new base from July 2020): the months before are assessed on the figures of
    -- the rule before it until then, and settled up or refunded (多退少补) when it comes.
    add column in_use_from date,
    add check (in_use_from is null or in_use_from > effective_from),
    add check (in_use_from is null or effective_to is null or in_use_from <= effective_to);

-- When a rule with `in_use_from` came into use: the assessment of the first month on or after
-- that month re-derived the bases of its period and re-assessed the months assessed before,
-- once. A rule is named by region, type and first month, which its later versions (set-policy
-- closing or replacing it) keep.
create table policy_in_use (
    region         text        not null,
    insurance_type text        not null,
    effective_from date        not null,
    in_use_from    date        not null,
    -- The assess-month command whose run brought it into use.
    message_id     uuid        not null,
    recorded_at    timestamptz not null default now(),
    primary key (region, insurance_type, effective_from)
);
