-- Example query 3 in SQL, first part: the matched customers' average monthly balances, in bands
-- (examples/messenger-audience's balance_band). Needs the partner's audience list
-- (`--audience`), which adds customers.in_partner_audience.
SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 1)
  CASE
    WHEN avg_monthly_balance < 1000 THEN 'under $1k'
    WHEN avg_monthly_balance < 5000 THEN '$1k-5k'
    WHEN avg_monthly_balance < 25000 THEN '$5k-25k'
    WHEN avg_monthly_balance < 100000 THEN '$25k-100k'
    ELSE '$100k and over'
  END AS band,
  COUNT(*, contribution_bounds_per_group => (0, 1)) AS balance_band
FROM customers
WHERE in_partner_audience
GROUP BY band
