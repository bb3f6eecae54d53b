"""HTTP routes: work_orders."""

from fastapi import APIRouter

router = APIRouter()
