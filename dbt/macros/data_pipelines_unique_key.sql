{#- A table's composite primary key holds no duplicate (single-column keys use dbt's `unique`). -#}
{% test data_pipelines_unique_key(model, columns) %}
select {{ columns | join(", ") }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(", ") }}
having count(*) > 1
{% endtest %}
