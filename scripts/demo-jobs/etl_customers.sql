-- Nightly ETL: the CRM export becomes a customer dimension and a BI extract.
.bail on
.mode csv
DROP TABLE IF EXISTS crm_raw;
.import raw/crm/export.csv crm_raw
DROP TABLE IF EXISTS dim_customer;
CREATE TABLE dim_customer AS
  SELECT CAST(customer_id AS INTEGER) AS customer_id, region, plan,
         CAST(monthly_spend AS REAL) AS monthly_spend,
         CAST(tenure_months AS INTEGER) AS tenure_months,
         CAST(support_tickets AS INTEGER) AS support_tickets,
         CAST(churned AS INTEGER) AS churned
  FROM crm_raw;
DROP TABLE crm_raw;
.headers on
.output bi/revenue_by_region.csv.tmp
SELECT region, plan, count(*) AS customers, round(sum(monthly_spend), 2) AS revenue
  FROM dim_customer GROUP BY region, plan ORDER BY region, plan;
.output stdout
