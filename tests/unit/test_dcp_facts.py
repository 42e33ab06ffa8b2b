"""Bybit's facts in ``exporter.dcp``: the inverse maps agree with the forward ones they come from."""

from exporter import dcp


def test_every_category_is_listed_under_its_product_and_no_other():
    for category, product in dcp.CATEGORY_PRODUCT.items():
        assert category in dcp.PRODUCT_CATEGORIES[product]
    listed = [c for categories in dcp.PRODUCT_CATEGORIES.values() for c in categories]
    assert sorted(listed) == sorted(dcp.CATEGORIES)
    assert dcp.PRODUCT_CATEGORIES == {"SPOT": ("spot",), "DERIVATIVES": ("linear", "inverse"), "OPTIONS": ("option",)}


def test_each_product_orders_in_its_first_category_linear_for_derivatives():
    assert dcp.PRODUCT_CATEGORY == {"SPOT": "spot", "DERIVATIVES": "linear", "OPTIONS": "option"}
    assert all(dcp.CATEGORY_PRODUCT[c] == p for p, c in dcp.PRODUCT_CATEGORY.items())


def test_the_topic_map_and_its_inverse_agree():
    assert {dcp.PRODUCT_TOPIC[p] for p in dcp.PRODUCTS} == set(dcp.TOPIC_PRODUCT)
    assert all(dcp.TOPIC_PRODUCT[dcp.PRODUCT_TOPIC[p]] == p for p in dcp.PRODUCTS)


def test_linear_orders_are_listed_per_settle_coin_the_others_at_once():
    assert dcp.settle_coins("linear") == ("USDT", "USDC")
    assert dcp.settle_coins("spot") == dcp.settle_coins("option") == dcp.settle_coins("inverse") == (None,)


def test_a_cancelled_order_is_final_and_so_are_filled_and_rejected_ones():
    assert dcp.CANCELLED_STATUSES < dcp.FINAL_STATUSES
    assert {"Filled", "Rejected"} <= dcp.FINAL_STATUSES
    assert not {"New", "PartiallyFilled", "Untriggered"} & dcp.FINAL_STATUSES
