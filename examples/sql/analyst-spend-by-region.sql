-- Example query 4 in SQL: each customer's yearly spend (at most 20,000) and the customers, by
-- region (examples/analyst-spend-by-region, which the bank runs in table mode; in SQL each
-- customer is evaluated alone, isolated or batched).
WITH yearly AS (
  SELECT c.region, COALESCE(SUM(t.amount), 0) AS total
  FROM customers AS c
  LEFT JOIN transactions AS t ON c.customer_id = t.customer_id
  GROUP BY c.region
)
SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 1)
  region,
  SUM(total, contribution_bounds_per_group => (0, 20000)) AS spend,
  COUNT(*, contribution_bounds_per_group => (0, 1)) AS customers
FROM yearly
GROUP BY region
