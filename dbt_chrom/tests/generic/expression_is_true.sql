{#- A boolean SQL expression holds for every row (limit rows with the test's `where` config). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
