def test_migrations_create_node_zero(db):
    from platform_config.models import Node

    assert list(Node.objects.values_list("num", flat=True)) == [0]
