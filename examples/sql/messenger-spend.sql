-- Example query 3 in SQL, second part: where the matched customers spend
-- (examples/messenger-audience's spend and spenders).
SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 10)
  t.mcc_group,
  SUM(t.amount, contribution_bounds_per_group => (0, 5000)) AS spend,
  COUNT(*, contribution_bounds_per_group => (0, 1)) AS spenders
FROM customers AS c
JOIN transactions AS t ON c.customer_id = t.customer_id
WHERE c.in_partner_audience
GROUP BY t.mcc_group
