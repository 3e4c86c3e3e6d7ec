-- Example query 2 in SQL: the share of customers with at least @min_alerts fraud alerts in the
-- last quarter, by region (the same numbers as examples/fraud-alerts-by-region).
SELECT WITH DIFFERENTIAL_PRIVACY
    OPTIONS (max_groups_contributed = 1)
  region,
  AVG(CASE WHEN fraud_alerts_last_quarter >= @min_alerts THEN 1 ELSE 0 END,
      contribution_bounds_per_group => (0, 1), decimals => 4) AS share_with_alert,
  COUNT(DISTINCT customer_id) AS customers
FROM customers
GROUP BY region
