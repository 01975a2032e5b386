"""fer-dashboard: `streamlit run dashboard.py`.

The navigation lists Home, Train and each view page that exists in views/ (see app_common.PAGES)."""
from app_common import navigation

navigation().run()
