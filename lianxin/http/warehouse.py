"""HTTP routes: warehouse."""

from fastapi import APIRouter

router = APIRouter()
