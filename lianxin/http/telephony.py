"""HTTP routes: telephony."""

from fastapi import APIRouter

router = APIRouter()
