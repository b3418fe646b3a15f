-- Claim deadlines and retroactive reimbursement 追溯报销 (issue 10 §3).
--
-- A claim must be made within the policy's claim window after the day care began, and a
-- window that a settlement stop overlaps is extended by the stop (顺延, Wuhan 2021: "停机期间
-- 到期的各项期限顺延"). DOMAIN.md and the notices give no window, so the seed has none (null:
-- no deadline); a policy version sets one with set-benefit-policy.
alter table benefit_policies add column claim_window_days integer check (claim_window_days > 0);

-- submit_by: the claim's deadline as extended when it was made; retroactive: care paid in
-- cash during a settlement stop, reimbursed afterwards.
alter table claims add column submit_by timestamptz,
                   add column retroactive boolean not null default false;
