-- A `move-to` order names the month assessed (as the published overrides do: Hangzhou's July
-- 2020 closes 08-25), which assessments already have in `month`; the collection month V4
-- added is not needed.
alter table assessments drop column collected_in;
