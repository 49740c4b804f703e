-- Episodes opened before migration 0013 was applied had their referral complete on arrival (the earlier rule: the
-- transfer is the referral reaching the centre), so their IPT received date is the London date they were opened.
-- Without it an upgraded hub would count every earlier cancer episode as not yet transferred and alert on each at
-- once. Episodes opened since 0013 are left alone: a NULL date there is a referral not yet complete. (A separate
-- migration, not an edit of 0013, which a hub of the previous release may already have applied.)
UPDATE episodes e SET ipt_received_date = (e.opened_at AT TIME ZONE 'Europe/London')::date
  FROM schema_migrations m
 WHERE m.version = 13 AND e.opened_at < m.applied_at
   AND e.pathway_start IS NOT NULL AND e.ipt_received_date IS NULL;
