"""Durable record of accepted webhooks and of rejections."""
