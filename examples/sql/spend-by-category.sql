-- Example query 1 in SQL: card spend by merchant category group and age band (the same
-- numbers as the Rust module examples/spend-by-category).
SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 10)
  t.mcc_group,
  c.age_band,
  -- a customer's yearly spend in a group, at most 3,000
  SUM(t.amount, contribution_bounds_per_group => (0, 3000)) AS spend,
  -- purchases, at most 30 per customer and group
  COUNT(*, contribution_bounds_per_group => (0, 30)) AS purchases,
  -- the mean purchase: each counts up to 300, at most 30 per customer and group
  AVG(t.amount, contribution_bounds_per_row => (0, 300), max_rows_per_group => 30) AS average_ticket
FROM customers AS c
JOIN transactions AS t ON c.customer_id = t.customer_id
GROUP BY t.mcc_group, c.age_band
