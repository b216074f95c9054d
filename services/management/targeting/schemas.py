"""Wire shapes of the targeting API (Short.io's names: country, region, originalURL)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from services.management.links.validation import validate_destination
from services.management.targeting.codes import country_code, region_code

MAX_RULES = 300


class CountryRule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    country: str
    originalURL: str

    @model_validator(mode="after")
    def _check(self) -> CountryRule:
        self.country = country_code(self.country)
        self.originalURL = validate_destination(self.originalURL)
        return self


class RegionRule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    country: str
    region: str
    originalURL: str

    @model_validator(mode="after")
    def _check(self) -> RegionRule:
        self.country = country_code(self.country)
        self.region = region_code(self.country, self.region)
        self.originalURL = validate_destination(self.originalURL)
        return self


class CountryRules(RootModel[list[CountryRule]]):
    root: list[CountryRule] = Field(min_length=1, max_length=MAX_RULES)


class RegionRules(RootModel[list[RegionRule]]):
    root: list[RegionRule] = Field(min_length=1, max_length=MAX_RULES)
