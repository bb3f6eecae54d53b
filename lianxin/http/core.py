"""HTTP routes: core."""

from fastapi import APIRouter

router = APIRouter()
