"""Request and response shapes of the statistics API (Short.io's as the model)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.stats.periods import Interval, Period

MAX_TOP_LIMIT = 100
MAX_LAST_CLICKS = 1000


class StatsQuery(BaseModel):
    """Period and time zone: the query string of GET, the body of POST."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period: Period = "total"
    tz: str | None = Field(default=None, max_length=64,
                           description="Time zone name (Europe/Paris) or offset (+05:30)")
    tzOffset: int | None = Field(default=None, description="Minutes east of UTC (60 = UTC+1)")
    startDate: str | int | None = Field(
        default=None, description="custom period: YYYY-MM-DD (local), ISO 8601 or epoch ms")
    endDate: str | int | None = Field(
        default=None, description="custom period: a YYYY-MM-DD end date includes that day")
    clicksChartInterval: Interval | None = None
    skipTops: bool = False


class FilterSpec(BaseModel):
    """Values to keep (include) or drop (exclude); each list matches any of its values."""

    model_config = ConfigDict(extra="forbid")

    countries: list[str] | None = None
    regions: list[str] | None = None
    cities: list[str] | None = None
    browsers: list[str] | None = None
    os: list[str] | None = None
    devices: list[str] | None = None
    referers: list[str] | None = Field(default=None, description="referer hosts")
    socials: list[str] | None = None
    utmSources: list[str] | None = None
    utmMediums: list[str] | None = None
    utmCampaigns: list[str] | None = None
    paths: list[str] | None = None
    human: bool | None = Field(default=None, description="include only: humans or bots")


class FilteredStatsQuery(StatsQuery):
    include: FilterSpec | None = None
    exclude: FilterSpec | None = None


class LinkClicksQuery(StatsQuery):
    ids: str | list[str] = Field(description="link idStrings, comma separated")


class TopQuery(FilteredStatsQuery):
    column: str = Field(description="path, or a dimension: country, region, city, browser, "
                                    "os, device, referer, social, utm_source, utm_medium, "
                                    "utm_campaign")
    limit: int = Field(default=10, ge=1, le=MAX_TOP_LIMIT)


class LastClicksQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=MAX_LAST_CLICKS)
    beforeDate: str | int | None = None
    afterDate: str | int | None = None
    linkId: str | None = Field(default=None, description="only this link (its idString)")


class Point(BaseModel):
    x: str
    y: int


class Dataset(BaseModel):
    label: str
    data: list[Point]


class ClickStatistics(BaseModel):
    datasets: list[Dataset]


class IntervalInfo(BaseModel):
    startDate: str
    endDate: str
    prevStartDate: str | None
    prevEndDate: str | None
    tz: str
    clicksChartInterval: Interval


class LinkStatistics(BaseModel):
    model_config = ConfigDict(extra="allow")

    totalClicks: int
    humanClicks: int
    totalClicksChange: str
    humanClicksChange: str
    uniqueVisitors: int | None = None
    clickStatistics: ClickStatistics
    interval: IntervalInfo
    country: list[dict[str, Any]] = []
    region: list[dict[str, Any]] = []
    city: list[dict[str, Any]] = []
    browser: list[dict[str, Any]] = []
    os: list[dict[str, Any]] = []
    device: list[dict[str, Any]] = []
    referer: list[dict[str, Any]] = []
    social: list[dict[str, Any]] = []
    utm_source: list[dict[str, Any]] = []
    utm_medium: list[dict[str, Any]] = []
    utm_campaign: list[dict[str, Any]] = []


class DomainStatistics(LinkStatistics):
    links: int
    linksChange: str
    clicksPerLink: float


class TopEntry(BaseModel):
    column: str
    score: int


class TopSeries(BaseModel):
    column: str
    score: int
    data: list[Point]


class TopByInterval(BaseModel):
    interval: IntervalInfo
    datasets: list[TopSeries]


class LastClick(BaseModel):
    model_config = ConfigDict(extra="allow")

    time: str
    linkId: int
    path: str
    ip: str | None
    ua: str | None
    referer: str | None
    country: str | None
    human: bool
    browser: str | None
    os: str | None


class Success(BaseModel):
    success: bool = True
