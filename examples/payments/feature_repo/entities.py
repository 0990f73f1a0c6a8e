"""Entities of the card-payments example: string keys."""

from feast import Entity, ValueType

card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.STRING)
