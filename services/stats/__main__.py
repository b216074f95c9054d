from services.stats.app import create_app
from services.stats.settings import Settings
from shared.runner import run_service


def main() -> None:
    settings = Settings()
    run_service(create_app(settings), settings, access_log=True)


if __name__ == "__main__":
    main()
