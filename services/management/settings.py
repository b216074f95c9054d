from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_MANAGEMENT_PORT, CommonSettings


class Settings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="LINKHOP_MANAGEMENT_", extra="ignore",
                                      frozen=True)

    port: int = DEFAULT_MANAGEMENT_PORT
    # Scheme of the short URLs this installation hands out (shortURL / secureShortURL).
    short_url_scheme: str = "https"
